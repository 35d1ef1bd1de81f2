#include "common/security/revocation_list.h"

#include <chrono>
#include <filesystem>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/base/atomic_file.h"
#include "tests/common/security/security_test_util.h"

namespace fedjoint::common::security {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

class RevocationListTest : public SecurityTest {
 protected:
  void SetUp() override {
    SecurityTest::SetUp();
    pki_ = std::make_unique<PkiLayout>(MakePki());
    MakeSite(*pki_, "site-a");
    MakeSite(*pki_, "site-b");
    auto list = ListCertificates(pki_->root);
    ASSERT_TRUE(list.ok());
    serial_a_ = (*list)[0].serial;
    serial_b_ = (*list)[1].serial;
  }

  std::shared_ptr<RevocationList> Load(std::chrono::milliseconds interval) {
    auto list = RevocationList::Load(pki_->crl(), pki_->ca_cert(), {interval});
    EXPECT_TRUE(list.ok()) << list.status();
    return list.ok() ? *list : nullptr;
  }

  std::unique_ptr<PkiLayout> pki_;
  std::string serial_a_;
  std::string serial_b_;
};

TEST_F(RevocationListTest, PicksUpRevocationWithoutBeingRecreated) {
  auto list = Load(50ms);
  ASSERT_NE(list, nullptr);
  EXPECT_FALSE(list->IsRevoked(serial_a_));
  EXPECT_EQ(list->revoked_count(), 0u);

  ASSERT_TRUE(RevokeSite(pki_->root, "site-a").ok());
  std::this_thread::sleep_for(60ms);
  EXPECT_TRUE(list->IsRevoked(serial_a_));
  EXPECT_FALSE(list->IsRevoked(serial_b_));
  EXPECT_EQ(list->crl_number(), 2);

  ASSERT_TRUE(RevokeSite(pki_->root, "site-b").ok());
  std::this_thread::sleep_for(60ms);
  EXPECT_TRUE(list->IsRevoked(serial_b_));
  EXPECT_EQ(list->revoked_count(), 2u);
}

TEST_F(RevocationListTest, ChecksTheFileAtMostOncePerInterval) {
  auto list = Load(1h);
  ASSERT_NE(list, nullptr);
  ASSERT_TRUE(RevokeSite(pki_->root, "site-a").ok());
  EXPECT_FALSE(list->IsRevoked(serial_a_)) << "the interval has not passed yet";
  ASSERT_TRUE(list->ReloadIfChanged().ok());
  EXPECT_TRUE(list->IsRevoked(serial_a_));
}

TEST_F(RevocationListTest, SerialsAreComparedCanonicallyAndMalformedOnesFailClosed) {
  ASSERT_TRUE(RevokeSite(pki_->root, "site-a").ok());
  auto list = Load(1h);
  ASSERT_NE(list, nullptr);
  std::string lower_with_colons;
  for (std::size_t i = 0; i < serial_a_.size(); ++i) {
    if (i > 0 && i % 2 == 0) lower_with_colons += ':';
    lower_with_colons += static_cast<char>(std::tolower(serial_a_[i]));
  }
  EXPECT_TRUE(list->IsRevoked(lower_with_colons));
  EXPECT_TRUE(list->IsRevoked("00" + serial_a_));
  EXPECT_TRUE(list->IsRevoked("not-hex")) << "fail closed";
  EXPECT_FALSE(list->IsRevoked(serial_b_));
}

TEST_F(RevocationListTest, RefusesCrlFromAnotherCa) {
  PkiLayout other = MakePki("other");
  auto list = RevocationList::Load(other.crl(), pki_->ca_cert());
  EXPECT_EQ(list.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(list.status().message(), HasSubstr("CRL is not issued by the consortium CA"));
}

TEST_F(RevocationListTest, RefusesCrlWithBadSignature) {
  auto crl = ReadCrlFile(pki_->crl());
  ASSERT_TRUE(crl.ok());
  // Re-sign the CRL (same issuer name) with a key that is not the CA's.
  auto wrong_key = GenerateP256Key();
  ASSERT_TRUE(wrong_key.ok());
  ASSERT_GT(X509_CRL_sign(crl->get(), wrong_key->get(), EVP_sha256()), 0);
  ASSERT_TRUE(base::WriteFileAtomically(pki_->crl(), *CrlToPem(crl->get())).ok());
  auto list = RevocationList::Load(pki_->crl(), pki_->ca_cert());
  EXPECT_EQ(list.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(list.status().message(),
              HasSubstr("crl.pem: CRL signature does not verify with the consortium CA"));
}

TEST_F(RevocationListTest, BadReplacementKeepsLastGoodList) {
  ASSERT_TRUE(RevokeSite(pki_->root, "site-a").ok());
  auto list = Load(1h);
  ASSERT_NE(list, nullptr);
  ASSERT_TRUE(base::WriteFileAtomically(pki_->crl(), "garbage").ok());
  absl::Status reload = list->ReloadIfChanged();
  EXPECT_EQ(reload.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(reload.message(), HasSubstr("crl.pem: not a PEM certificate revocation list"));
  EXPECT_TRUE(list->IsRevoked(serial_a_));

  fs::remove(pki_->crl());
  EXPECT_EQ(list->ReloadIfChanged().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(list->IsRevoked(serial_a_));
}

TEST_F(RevocationListTest, RefusesRollbackToAnOlderCrl) {
  std::string before = Read(pki_->crl());
  ASSERT_TRUE(RevokeSite(pki_->root, "site-a").ok());
  auto list = Load(1h);
  ASSERT_NE(list, nullptr);
  ASSERT_TRUE(list->IsRevoked(serial_a_));
  ASSERT_TRUE(base::WriteFileAtomically(pki_->crl(), before).ok());
  absl::Status reload = list->ReloadIfChanged();
  EXPECT_EQ(reload.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(reload.message(), HasSubstr("refusing the rollback"));
  EXPECT_TRUE(list->IsRevoked(serial_a_));
}

TEST_F(RevocationListTest, LoadNamesMissingFiles) {
  auto list = RevocationList::Load(dir_ / "nope.pem", pki_->ca_cert());
  EXPECT_EQ(list.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(list.status().message(), HasSubstr("nope.pem"));
  list = RevocationList::Load(pki_->crl(), dir_ / "no-ca.crt");
  EXPECT_EQ(list.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(list.status().message(), HasSubstr("no-ca.crt"));
}

}  // namespace
}  // namespace fedjoint::common::security
