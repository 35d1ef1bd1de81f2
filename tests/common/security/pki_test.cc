#include "common/security/pki.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <ctime>
#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/security/openssl_util.h"
#include "common/security/pki_index.h"
#include "common/security/site_name.h"
#include "tests/common/security/security_test_util.h"

namespace fedjoint::common::security {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

unsigned Mode(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

double LifetimeDays(X509* cert) {
  int days = 0, seconds = 0;
  EXPECT_EQ(ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(cert), X509_get0_notAfter(cert)),
            1);
  return days + seconds / 86400.0;
}

bool HasExtension(X509* cert, int nid) { return X509_get_ext_by_NID(cert, nid, -1) >= 0; }

// A CSR for `common_name` made directly with OpenSSL, as a third-party tool would.
fs::path WriteCsr(const fs::path& path, const std::string& common_name) {
  auto key = GenerateP256Key();
  EXPECT_TRUE(key.ok());
  X509ReqPtr csr(X509_REQ_new());
  X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(csr.get()), NID_commonName, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_REQ_set_pubkey(csr.get(), key->get());
  EXPECT_GT(X509_REQ_sign(csr.get(), key->get(), EVP_sha256()), 0);
  EXPECT_TRUE(base::WriteFileAtomically(path, *CsrToPem(csr.get())).ok());
  return path;
}

TEST_F(SecurityTest, InitCreatesFilesWithPrivateKeysReadableOnlyByOwner) {
  PkiLayout pki = MakePki();
  for (const fs::path& key : {pki.ca_key(), pki.server_key(), pki.signing_key()}) {
    EXPECT_EQ(Mode(key), 0600u) << key;
  }
  for (const fs::path& file :
       {pki.ca_cert(), pki.server_cert(), pki.signing_cert(), pki.crl(), pki.index()}) {
    EXPECT_TRUE(fs::exists(file)) << file;
  }
  EXPECT_TRUE(fs::is_directory(pki.issued_dir()));
  EXPECT_EQ(Mode(pki.root), 0700u) << "a folder created by init holds the CA key";
  auto index = ReadPkiIndex(pki.index());
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_THAT(index->certificates, IsEmpty());
}

TEST_F(SecurityTest, InitMakesSelfSignedTenYearCa) {
  PkiLayout pki = MakePki();
  X509Ptr ca = LoadCert(pki.ca_cert());
  ASSERT_NE(ca, nullptr);
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  int critical = 0;
  auto* constraints = static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(ca.get(), NID_basic_constraints, &critical, nullptr));
  ASSERT_NE(constraints, nullptr);
  EXPECT_TRUE(constraints->ca);
  EXPECT_EQ(critical, 1);
  BASIC_CONSTRAINTS_free(constraints);
  EXPECT_EQ(X509_get_key_usage(ca.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_TRUE(HasExtension(ca.get(), NID_subject_key_identifier));
  EXPECT_TRUE(HasExtension(ca.get(), NID_authority_key_identifier));
  EXPECT_EQ(X509_verify(ca.get(), X509_get0_pubkey(ca.get())), 1) << "self-signed";
  EXPECT_NEAR(LifetimeDays(ca.get()), kCaLifetimeDays, 0.01);
  EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(ca.get())), EVP_PKEY_EC);
  EXPECT_EQ(EVP_PKEY_get_bits(X509_get0_pubkey(ca.get())), 256);
  EXPECT_THAT(CommonName(X509_get_subject_name(ca.get())), HasSubstr("fedjoint consortium CA"));
}

TEST_F(SecurityTest, ServerCertificateHasDefaultSansServerAuthAndChainsToCa) {
  PkiLayout pki = MakePki();
  X509Ptr ca = LoadCert(pki.ca_cert());
  X509Ptr server = LoadCert(pki.server_cert());
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(CommonName(X509_get_subject_name(server.get())), kCoordinatorCommonName);
  EXPECT_EQ(X509_check_host(server.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(server.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_host(server.get(), "coordinator.example.org", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_get_extended_key_usage(server.get()), static_cast<uint32_t>(XKU_SSL_SERVER));
  EXPECT_EQ(X509_check_ca(server.get()), 0);
  EXPECT_NEAR(LifetimeDays(server.get()), kServerLifetimeDays, 0.01);
  EXPECT_TRUE(VerifyChain(server.get(), ca.get(), X509_PURPOSE_SSL_SERVER).ok());
  EXPECT_FALSE(VerifyChain(server.get(), ca.get(), X509_PURPOSE_SSL_CLIENT).ok())
      << "the coordinator's certificate must not work as a site's client certificate";
  EXPECT_EQ(X509_check_private_key(server.get(), ReadPrivateKeyFile(pki.server_key())->get()), 1);
}

TEST_F(SecurityTest, ServerCertificateUsesGivenHostsAndIps) {
  PkiInitOptions options;
  options.server_hosts = {"coordinator.example.org", "*.fed.example.org"};
  options.server_ips = {"10.1.2.3", "::1"};
  PkiLayout pki = MakePki("pki", options);
  X509Ptr server = LoadCert(pki.server_cert());
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(X509_check_host(server.get(), "coordinator.example.org", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(server.get(), "node1.fed.example.org", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(server.get(), "10.1.2.3", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(server.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_host(server.get(), "localhost", 0, 0, nullptr), 0);
}

TEST_F(SecurityTest, InitRejectsMalformedHostAndIpBeforeWritingAnything) {
  PkiInitOptions bad_host;
  bad_host.server_hosts = {"evil,DNS:attacker.org"};
  absl::Status status = InitPki(dir_ / "a", bad_host);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("invalid --host 'evil,DNS:attacker.org'"));
  EXPECT_FALSE(fs::exists(dir_ / "a"));

  PkiInitOptions bad_ip;
  bad_ip.server_ips = {"300.1.1.1"};
  status = InitPki(dir_ / "b", bad_ip);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("invalid --ip '300.1.1.1'"));
}

TEST_F(SecurityTest, SigningCertificateIsForCodeSigningOnly) {
  PkiLayout pki = MakePki();
  X509Ptr ca = LoadCert(pki.ca_cert());
  X509Ptr signing = LoadCert(pki.signing_cert());
  ASSERT_NE(signing, nullptr);
  EXPECT_EQ(CommonName(X509_get_subject_name(signing.get())), kModelSigningCommonName);
  EXPECT_EQ(X509_get_key_usage(signing.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_EQ(X509_get_extended_key_usage(signing.get()), static_cast<uint32_t>(XKU_CODE_SIGN));
  EXPECT_TRUE(VerifyChain(signing.get(), ca.get(), 0).ok());
  EXPECT_FALSE(VerifyChain(signing.get(), ca.get(), X509_PURPOSE_SSL_CLIENT).ok());
}

TEST_F(SecurityTest, InitRefusesToReplaceExistingCaUnlessForced) {
  PkiLayout pki = MakePki();
  std::string original_ca = Read(pki.ca_cert());
  absl::Status again = InitPki(pki.root, {});
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(again.message(), HasSubstr("already holds a consortium CA"));
  EXPECT_THAT(again.message(), HasSubstr("--force"));
  EXPECT_EQ(Read(pki.ca_cert()), original_ca);

  PkiInitOptions force;
  force.force = true;
  ASSERT_TRUE(InitPki(pki.root, force).ok());
  EXPECT_NE(Read(pki.ca_cert()), original_ca);
}

TEST_F(SecurityTest, InitialCrlIsEmptyAndSignedByCa) {
  PkiLayout pki = MakePki();
  X509Ptr ca = LoadCert(pki.ca_cert());
  auto crl = ReadCrlFile(pki.crl());
  ASSERT_TRUE(crl.ok()) << crl.status();
  EXPECT_EQ(X509_CRL_verify(crl->get(), X509_get0_pubkey(ca.get())), 1);
  EXPECT_EQ(X509_CRL_get_REVOKED(crl->get()), nullptr) << "no revoked entries";
  EXPECT_NE(X509_CRL_get0_nextUpdate(crl->get()), nullptr);
}

TEST_F(SecurityTest, SiteNamesAreValidated) {
  EXPECT_TRUE(ValidateSiteName("site-a").ok());
  EXPECT_TRUE(ValidateSiteName("0hospital").ok());
  EXPECT_TRUE(ValidateSiteName(std::string(63, 'a')).ok());
  EXPECT_THAT(ValidateSiteName("").message(), HasSubstr("empty"));
  EXPECT_THAT(ValidateSiteName(std::string(64, 'a')).message(), HasSubstr("longer than 63"));
  EXPECT_THAT(ValidateSiteName("-site").message(), HasSubstr("must start with"));
  EXPECT_THAT(ValidateSiteName("Site_A").message(), HasSubstr("must start with"));
  EXPECT_THAT(ValidateSiteName("site_a").message(),
              HasSubstr("invalid site name 'site_a': only lower-case letters, digits and '-'"));
  EXPECT_THAT(ValidateSiteName("../etc").message(), HasSubstr("must start with"));
  EXPECT_THAT(ValidateSiteName("fedjoint-coordinator").message(), HasSubstr("reserved"));
}

TEST_F(SecurityTest, RequestWritesPrivateKeyAndSelfSignedCsr) {
  auto request = CreateSiteRequest("site-a", dir_ / "site");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->key, dir_ / "site" / "site-a.key");
  EXPECT_EQ(request->csr, dir_ / "site" / "site-a.csr");
  EXPECT_EQ(Mode(request->key), 0600u);
  auto csr = ReadCsrFile(request->csr);
  ASSERT_TRUE(csr.ok());
  EXPECT_EQ(CommonName(X509_REQ_get_subject_name(csr->get())), "site-a");
  EXPECT_EQ(X509_REQ_verify(csr->get(), X509_REQ_get0_pubkey(csr->get())), 1);
  auto key = ReadPrivateKeyFile(request->key);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(EVP_PKEY_eq(key->get(), X509_REQ_get0_pubkey(csr->get())), 1);
}

TEST_F(SecurityTest, RequestRefusesInvalidNameAndExistingKey) {
  auto bad = CreateSiteRequest("Site A", dir_ / "site");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("invalid site name 'Site A'"));
  ASSERT_TRUE(CreateSiteRequest("site-a", dir_ / "site").ok());
  std::string key = Read(dir_ / "site" / "site-a.key");
  auto again = CreateSiteRequest("site-a", dir_ / "site");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Read(dir_ / "site" / "site-a.key"), key);
  EXPECT_TRUE(CreateSiteRequest("site-a", dir_ / "site", /*force=*/true).ok());
  EXPECT_NE(Read(dir_ / "site" / "site-a.key"), key);
}

TEST_F(SecurityTest, SignIssuesClientCertificateWithoutTheSiteKey) {
  PkiLayout pki = MakePki();
  auto request = CreateSiteRequest("site-a", dir_ / "site");
  ASSERT_TRUE(request.ok());
  // The operator only ever sees the CSR: move the site's folder out of reach except the CSR.
  fs::path csr_copy = dir_ / "inbox" / "site-a.csr";
  fs::create_directories(csr_copy.parent_path());
  fs::copy_file(request->csr, csr_copy);
  fs::rename(dir_ / "site", dir_ / "site-elsewhere");

  auto issued = SignSiteRequest(pki.root, csr_copy, {});
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_EQ(issued->name, "site-a");
  EXPECT_EQ(issued->file, "issued/site-a.crt");
  EXPECT_FALSE(issued->revoked());

  X509Ptr ca = LoadCert(pki.ca_cert());
  X509Ptr cert = LoadCert(pki.issued_cert("site-a"));
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(CommonName(X509_get_subject_name(cert.get())), "site-a");
  EXPECT_EQ(X509_get_extended_key_usage(cert.get()), static_cast<uint32_t>(XKU_SSL_CLIENT));
  EXPECT_EQ(X509_get_key_usage(cert.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EXPECT_TRUE(VerifyChain(cert.get(), ca.get(), X509_PURPOSE_SSL_CLIENT).ok());
  EXPECT_FALSE(VerifyChain(cert.get(), ca.get(), X509_PURPOSE_SSL_SERVER).ok());
  EXPECT_NEAR(LifetimeDays(cert.get()), kDefaultSiteLifetimeDays, 0.01);
  EXPECT_EQ(SerialToHex(X509_get0_serialNumber(cert.get())), issued->serial);
  EXPECT_EQ(issued->serial.size(), 32u) << "a random 128-bit serial";

  auto site_key = ReadPrivateKeyFile(dir_ / "site-elsewhere" / "site-a.key");
  ASSERT_TRUE(site_key.ok());
  EXPECT_EQ(X509_check_private_key(cert.get(), site_key->get()), 1);
  std::string key_pem = Read(dir_ / "site-elsewhere" / "site-a.key");
  for (const auto& entry : fs::recursive_directory_iterator(pki.root)) {
    if (entry.is_regular_file()) {
      EXPECT_NE(Read(entry.path()), key_pem) << entry.path();
    }
  }

  auto index = ReadPkiIndex(pki.index());
  ASSERT_TRUE(index.ok());
  ASSERT_THAT(index->certificates, SizeIs(1));
  EXPECT_EQ(index->certificates[0].serial, issued->serial);
  EXPECT_EQ(index->certificates[0].not_after, issued->not_after);
}

TEST_F(SecurityTest, SignHonoursDaysAndRejectsOutOfRange) {
  PkiLayout pki = MakePki();
  fs::path csr = WriteCsr(dir_ / "a.csr", "site-a");
  IssueOptions options;
  options.days = 30;
  ASSERT_TRUE(SignSiteRequest(pki.root, csr, options).ok());
  EXPECT_NEAR(LifetimeDays(LoadCert(pki.issued_cert("site-a")).get()), 30, 0.01);
  options.days = 0;
  options.force = true;
  auto bad = SignSiteRequest(pki.root, csr, options);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("--days 0 is out of range"));
  options.days = kCaLifetimeDays;
  bad = SignSiteRequest(pki.root, csr, options);
  EXPECT_THAT(bad.status().message(), HasSubstr("would make the certificate outlive the CA"));
}

TEST_F(SecurityTest, SignRefusesCsrWhoseSelfSignatureDoesNotVerify) {
  PkiLayout pki = MakePki();
  auto request = CreateSiteRequest("site-a", dir_ / "site");
  ASSERT_TRUE(request.ok());
  // Someone renames the request on its way to the operator without the site's key.
  X509ReqPtr csr = std::move(*ReadCsrFile(request->csr));
  X509NamePtr name(X509_NAME_new());
  X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("site-b"), -1, -1, 0);
  ASSERT_EQ(X509_REQ_set_subject_name(csr.get(), name.get()), 1);
  fs::path tampered = dir_ / "tampered.csr";
  ASSERT_TRUE(base::WriteFileAtomically(tampered, *CsrToPem(csr.get())).ok());

  auto issued = SignSiteRequest(pki.root, tampered, {});
  EXPECT_EQ(issued.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(issued.status().message(),
              HasSubstr(tampered.string() + ": the request's self-signature does not verify"));
  EXPECT_FALSE(fs::exists(pki.issued_cert("site-b")));
  EXPECT_THAT(ReadPkiIndex(pki.index())->certificates, IsEmpty());
}

TEST_F(SecurityTest, SignRefusesInvalidSiteNameAndGarbage) {
  PkiLayout pki = MakePki();
  fs::path csr = WriteCsr(dir_ / "bad.csr", "Bad Name");
  auto issued = SignSiteRequest(pki.root, csr, {});
  EXPECT_EQ(issued.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(issued.status().message(),
              HasSubstr(csr.string() + ": common name: invalid site name 'Bad Name'"));

  csr = WriteCsr(dir_ / "reserved.csr", "fedjoint-coordinator");
  issued = SignSiteRequest(pki.root, csr, {});
  EXPECT_THAT(issued.status().message(), HasSubstr("reserved"));

  ASSERT_TRUE(base::WriteFileAtomically(dir_ / "junk.csr", "hello").ok());
  issued = SignSiteRequest(pki.root, dir_ / "junk.csr", {});
  EXPECT_EQ(issued.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(issued.status().message(), HasSubstr("not a PEM certificate signing request"));

  issued = SignSiteRequest(pki.root, dir_ / "missing.csr", {});
  EXPECT_EQ(issued.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(issued.status().message(), HasSubstr("missing.csr"));
}

TEST_F(SecurityTest, SignRefusesLiveNameUntilRevokedOrForced) {
  PkiLayout pki = MakePki();
  ASSERT_TRUE(SignSiteRequest(pki.root, WriteCsr(dir_ / "1.csr", "site-a"), {}).ok());
  auto again = SignSiteRequest(pki.root, WriteCsr(dir_ / "2.csr", "site-a"), {});
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(again.status().message(),
              HasSubstr("site 'site-a' already holds a valid certificate"));
  EXPECT_THAT(again.status().message(), HasSubstr("pki revoke site-a"));

  IssueOptions force;
  force.force = true;
  EXPECT_TRUE(SignSiteRequest(pki.root, dir_ / "2.csr", force).ok());
  ASSERT_TRUE(RevokeSite(pki.root, "site-a").ok());
  EXPECT_TRUE(SignSiteRequest(pki.root, WriteCsr(dir_ / "3.csr", "site-a"), {}).ok())
      << "a revoked name may be issued again";
  auto list = ListCertificates(pki.root);
  ASSERT_TRUE(list.ok());
  ASSERT_THAT(*list, SizeIs(3));
  EXPECT_TRUE((*list)[0].revoked());
  EXPECT_TRUE((*list)[1].revoked());
  EXPECT_FALSE((*list)[2].revoked());
}

TEST_F(SecurityTest, RevokeWritesSignedCrlListingTheSerial) {
  PkiLayout pki = MakePki();
  MakeSite(pki, "site-a");
  MakeSite(pki, "site-b");
  auto list = ListCertificates(pki.root);
  ASSERT_TRUE(list.ok());
  std::string serial_a = (*list)[0].serial;
  std::string serial_b = (*list)[1].serial;

  auto revoked = RevokeSite(pki.root, "site-a");
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  ASSERT_THAT(*revoked, SizeIs(1));
  EXPECT_EQ((*revoked)[0].serial, serial_a);
  EXPECT_TRUE((*revoked)[0].revoked());

  X509Ptr ca = LoadCert(pki.ca_cert());
  auto crl = ReadCrlFile(pki.crl());
  ASSERT_TRUE(crl.ok());
  EXPECT_EQ(X509_CRL_verify(crl->get(), X509_get0_pubkey(ca.get())), 1);
  EXPECT_EQ(X509_NAME_cmp(X509_CRL_get_issuer(crl->get()), X509_get_subject_name(ca.get())), 0);
  std::vector<std::string> serials;
  STACK_OF(X509_REVOKED)* entries = X509_CRL_get_REVOKED(crl->get());
  for (int i = 0; i < sk_X509_REVOKED_num(entries); ++i) {
    serials.push_back(
        SerialToHex(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(entries, i))));
  }
  EXPECT_THAT(serials, ElementsAre(serial_a));
  std::time_t now = std::time(nullptr);
  EXPECT_GT(X509_cmp_time(X509_CRL_get0_nextUpdate(crl->get()), &now), 0);

  // The revoked certificate now fails a CRL-checking verification; the other one passes.
  auto verify_with_crl = [&](const fs::path& cert_path) {
    X509Ptr cert = LoadCert(cert_path);
    X509StorePtr store(X509_STORE_new());
    X509_STORE_add_cert(store.get(), ca.get());
    X509_STORE_add_crl(store.get(), crl->get());
    X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK);
    X509StoreCtxPtr ctx(X509_STORE_CTX_new());
    X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr);
    int ok = X509_verify_cert(ctx.get());
    return ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx.get());
  };
  EXPECT_EQ(verify_with_crl(dir_ / "sites" / "site-a" / "site-a.crt"), X509_V_ERR_CERT_REVOKED);
  EXPECT_EQ(verify_with_crl(dir_ / "sites" / "site-b" / "site-b.crt"), X509_V_OK);

  auto again = RevokeSite(pki.root, "site-a");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(again.status().message(), HasSubstr("site 'site-a' has no unrevoked certificate"));
  EXPECT_EQ(RevokeSite(pki.root, "nobody").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(RevokeSite(pki.root, "No Body").status().code(), absl::StatusCode::kInvalidArgument);
  (void)serial_b;
}

TEST_F(SecurityTest, CrlNumberIncreasesWithEveryRewrite) {
  PkiLayout pki = MakePki();
  auto number = [&] {
    auto crl = ReadCrlFile(pki.crl());
    auto* n = static_cast<ASN1_INTEGER*>(
        X509_CRL_get_ext_d2i(crl->get(), NID_crl_number, nullptr, nullptr));
    long value = ASN1_INTEGER_get(n);
    ASN1_INTEGER_free(n);
    return value;
  };
  EXPECT_EQ(number(), 1);
  MakeSite(pki, "site-a");
  ASSERT_TRUE(RevokeSite(pki.root, "site-a").ok());
  EXPECT_EQ(number(), 2);
  ASSERT_TRUE(RefreshCrl(pki.root).ok());
  EXPECT_EQ(number(), 3);
  EXPECT_EQ(ReadPkiIndex(pki.index())->crl_number, 3);
}

}  // namespace
}  // namespace fedjoint::common::security
