// Shared fixture for the security tests: a fresh temporary folder per test and small helpers to
// build a consortium (CA + one or more sites) in it.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/base/atomic_file.h"
#include "common/security/openssl_util.h"
#include "common/security/pki.h"

namespace fedjoint::common::security {

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("fedjoint_security_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Creates a PKI in dir_/name and returns its layout.
  PkiLayout MakePki(const std::string& name = "pki", PkiInitOptions options = {}) {
    PkiLayout layout(dir_ / name);
    absl::Status status = InitPki(layout.root, options);
    EXPECT_TRUE(status.ok()) << status;
    return layout;
  }

  // Runs the site side and the operator side for `site`; returns the site's folder, which holds
  // SITE.key and (copied back, as the operator would send it) SITE.crt.
  std::filesystem::path MakeSite(const PkiLayout& pki, const std::string& site,
                                 const std::string& sites_root = "sites") {
    std::filesystem::path site_dir = dir_ / sites_root / site;
    auto request = CreateSiteRequest(site, site_dir);
    EXPECT_TRUE(request.ok()) << request.status();
    auto issued = SignSiteRequest(pki.root, request->csr);
    EXPECT_TRUE(issued.ok()) << issued.status();
    std::filesystem::copy_file(pki.issued_cert(site), site_dir / (site + ".crt"),
                               std::filesystem::copy_options::overwrite_existing);
    return site_dir;
  }

  static X509Ptr LoadCert(const std::filesystem::path& path) {
    auto cert = ReadCertificateFile(path);
    EXPECT_TRUE(cert.ok()) << cert.status();
    return cert.ok() ? std::move(*cert) : nullptr;
  }

  static std::string Read(const std::filesystem::path& path) {
    auto text = base::ReadSmallFile(path);
    EXPECT_TRUE(text.ok()) << text.status();
    return text.ok() ? *text : "";
  }

  std::filesystem::path dir_;
};

}  // namespace fedjoint::common::security
