#include "common/security/model_signing.h"

#include <openssl/evp.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "common/base/atomic_file.h"
#include "tests/common/security/security_test_util.h"

namespace fedjoint::common::security {
namespace {

using base::DigestToHex;
using base::Sha256Bytes;
using base::Sha256File;

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string ModelBytes(std::size_t size) {
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>((i * 131 + 7) % 251);
  return bytes;
}

class ModelSigningTest : public SecurityTest {
 protected:
  void SetUp() override {
    SecurityTest::SetUp();
    pki_ = std::make_unique<PkiLayout>(MakePki());
    model_ = dir_ / "global.safetensors";
    ASSERT_TRUE(base::WriteFileAtomically(model_, ModelBytes(3 << 20)).ok());
  }

  ModelSigner Signer(const PkiLayout& pki) {
    auto signer = ModelSigner::Load(pki.signing_key(), pki.signing_cert());
    EXPECT_TRUE(signer.ok()) << signer.status();
    return std::move(*signer);
  }
  SignatureVerifier Verifier() {
    auto verifier = SignatureVerifier::Load(pki_->ca_cert());
    EXPECT_TRUE(verifier.ok()) << verifier.status();
    return std::move(*verifier);
  }

  std::unique_ptr<PkiLayout> pki_;
  fs::path model_;
};

TEST_F(ModelSigningTest, SignedFileVerifies) {
  ASSERT_TRUE(Signer(*pki_).SignFile(model_).ok());
  EXPECT_TRUE(fs::exists(dir_ / "global.safetensors.sig"));
  absl::Status status = Verifier().VerifyFile(model_);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(ModelSigningTest, SignatureFileIsDocumentedJsonAndStandardEcdsa) {
  ASSERT_TRUE(Signer(*pki_).SignFile(model_).ok());
  nlohmann::json sig = nlohmann::json::parse(Read(SignaturePathFor(model_)));
  EXPECT_EQ(sig["format"], "fedjoint-signature");
  EXPECT_EQ(sig["version"], 1);
  EXPECT_EQ(sig["algorithm"], "ecdsa-p256-sha256");
  EXPECT_EQ(sig["sha256"], DigestToHex(Sha256Bytes(ModelBytes(3 << 20))));
  EXPECT_EQ(sig["certificate"], Read(pki_->signing_cert()));

  // Independently of our verifier: a plain ECDSA-with-SHA256 check over the file's bytes.
  std::string der;
  ASSERT_TRUE(absl::Base64Unescape(sig["signature"].get<std::string>(), &der));
  X509Ptr cert = LoadCert(pki_->signing_cert());
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  ASSERT_EQ(
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, X509_get0_pubkey(cert.get())),
      1);
  std::string bytes = Read(model_);
  EXPECT_EQ(
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(der.data()), der.size(),
                       reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()),
      1);
}

TEST_F(ModelSigningTest, DigestSignatureVerifiesOnlyForThatDigest) {
  Sha256Digest digest = Sha256Bytes("round 7 weights");
  auto sig = Signer(*pki_).SignDigest(digest);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(Verifier().VerifyDigest(digest, *sig, "mem.sig").ok());
  absl::Status other = Verifier().VerifyDigest(Sha256Bytes("round 8 weights"), *sig, "mem.sig");
  EXPECT_EQ(other.code(), absl::StatusCode::kDataLoss);
}

TEST_F(ModelSigningTest, FlippedByteInFileIsRefused) {
  ASSERT_TRUE(Signer(*pki_).SignFile(model_).ok());
  std::string bytes = Read(model_);
  bytes[bytes.size() / 2] ^= 0x01;
  ASSERT_TRUE(base::WriteFileAtomically(model_, bytes).ok());
  absl::Status status = Verifier().VerifyFile(model_);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("global.safetensors.sig: the data's SHA-256 is"));
  EXPECT_THAT(status.message(), HasSubstr("the file is corrupt or was modified"));
}

TEST_F(ModelSigningTest, FlippedByteInSignatureIsRefused) {
  ASSERT_TRUE(Signer(*pki_).SignFile(model_).ok());
  nlohmann::json sig = nlohmann::json::parse(Read(SignaturePathFor(model_)));
  std::string der;
  ASSERT_TRUE(absl::Base64Unescape(sig["signature"].get<std::string>(), &der));
  der[der.size() - 3] ^= 0x01;  // inside the s value
  sig["signature"] = absl::Base64Escape(der);
  ASSERT_TRUE(base::WriteFileAtomically(SignaturePathFor(model_), sig.dump()).ok());
  absl::Status status = Verifier().VerifyFile(model_);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(status.message(),
              HasSubstr("signature does not verify with the consortium's model-signing"));
}

TEST_F(ModelSigningTest, SignatureFromAnotherConsortiumIsRefused) {
  PkiLayout other = MakePki("other-consortium");
  ASSERT_TRUE(Signer(other).SignFile(model_).ok());
  absl::Status status = Verifier().VerifyFile(model_);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(status.message(),
              HasSubstr("signing certificate is not issued by the consortium CA"));

  // Swapping in our own signing certificate does not help the forger either.
  nlohmann::json sig = nlohmann::json::parse(Read(SignaturePathFor(model_)));
  sig["certificate"] = Read(pki_->signing_cert());
  ASSERT_TRUE(base::WriteFileAtomically(SignaturePathFor(model_), sig.dump()).ok());
  status = Verifier().VerifyFile(model_);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(status.message(), HasSubstr("signature does not verify"));
}

TEST_F(ModelSigningTest, SiteCertificateCannotSignModels) {
  fs::path site = MakeSite(*pki_, "site-a");
  auto refused = ModelSigner::Load(site / "site-a.key", site / "site-a.crt");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(refused.status().message(), HasSubstr("'site-a' is not a model-signing certificate"));

  // A site forging a .sig with its own (consortium-issued) key and certificate is refused too.
  ASSERT_TRUE(Signer(*pki_).SignFile(model_).ok());
  nlohmann::json sig = nlohmann::json::parse(Read(SignaturePathFor(model_)));
  auto key = ReadPrivateKeyFile(site / "site-a.key");
  ASSERT_TRUE(key.ok());
  Sha256Digest digest = *Sha256File(model_);
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(key->get(), nullptr));
  ASSERT_EQ(EVP_PKEY_sign_init(ctx.get()), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()), 1);
  std::string der(256, '\0');
  std::size_t len = der.size();
  ASSERT_EQ(EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()), &len,
                          digest.data(), digest.size()),
            1);
  der.resize(len);
  sig["signature"] = absl::Base64Escape(der);
  sig["certificate"] = Read(site / "site-a.crt");
  ASSERT_TRUE(base::WriteFileAtomically(SignaturePathFor(model_), sig.dump()).ok());
  absl::Status status = Verifier().VerifyFile(model_);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(status.message(), HasSubstr("'site-a' is not a model-signing certificate"));
}

TEST_F(ModelSigningTest, MissingOrMalformedSignatureFileIsReported) {
  absl::Status missing = Verifier().VerifyFile(model_);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("global.safetensors.sig"));

  ASSERT_TRUE(base::WriteFileAtomically(SignaturePathFor(model_), "{not json").ok());
  absl::Status malformed = Verifier().VerifyFile(model_);
  EXPECT_EQ(malformed.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(malformed.message(), HasSubstr("malformed signature file"));

  ASSERT_TRUE(
      base::WriteFileAtomically(SignaturePathFor(model_), R"({"format":"other","version":1})")
          .ok());
  EXPECT_THAT(Verifier().VerifyFile(model_).message(), HasSubstr("not a fedjoint signature file"));
}

TEST_F(ModelSigningTest, SignerRefusesKeyThatDoesNotMatchCertificate) {
  auto signer = ModelSigner::Load(pki_->server_key(), pki_->signing_cert());
  EXPECT_EQ(signer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(signer.status().message(), HasSubstr("server.key: does not match the certificate"));
}

}  // namespace
}  // namespace fedjoint::common::security
