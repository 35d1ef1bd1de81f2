// Mutual TLS over real gRPC on loopback: who gets in, who does not, and what the server learns
// about the peer. The server registers one generic handler that answers with the authenticated
// site name (via AuthenticatePeer), so no proto is needed.
#include "common/security/tls_credentials.h"

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/security/peer_identity.h"
#include "tests/common/security/security_test_util.h"

namespace fedjoint::common::security {
namespace {

namespace fs = std::filesystem;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// Answers every call with the caller's site name in trailing metadata, or UNAUTHENTICATED.
class WhoAmIService final : public grpc::CallbackGenericService {
 public:
  explicit WhoAmIService(std::shared_ptr<RevocationList> revocations)
      : revocations_(std::move(revocations)) {}

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    auto site = AuthenticatePeer(*ctx->auth_context(), *revocations_);
    if (site.ok()) ctx->AddTrailingMetadata("fedjoint-site", *site);
    return new Reactor(site.ok() ? grpc::Status::OK
                                 : grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                                std::string(site.status().message())));
  }

 private:
  class Reactor final : public grpc::ServerGenericBidiReactor {
   public:
    explicit Reactor(const grpc::Status& status) { Finish(status); }
    void OnDone() override { delete this; }
  };
  std::shared_ptr<RevocationList> revocations_;
};

struct CallResult {
  grpc::Status status;
  std::string site;
};

class TlsTest : public SecurityTest {
 protected:
  void SetUp() override {
    SecurityTest::SetUp();
    pki_ = std::make_unique<PkiLayout>(MakePki());
    site_a_ = MakeSite(*pki_, "site-a");
    site_b_ = MakeSite(*pki_, "site-b");
    auto revocations = RevocationList::Load(pki_->crl(), pki_->ca_cert(), {10ms});
    ASSERT_TRUE(revocations.ok()) << revocations.status();
    revocations_ = *revocations;
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 1s);
    server_.reset();
    service_.reset();
    SecurityTest::TearDown();
  }

  // Starts the coordinator side on 127.0.0.1 with an OS-chosen port.
  void StartServer(bool handshake_revocation) {
    auto creds = LoadServerCredentials(pki_->ca_cert(), pki_->server_cert(), pki_->server_key(),
                                       handshake_revocation ? revocations_ : nullptr);
    ASSERT_TRUE(creds.ok()) << creds.status();
    service_ = std::make_unique<WhoAmIService>(revocations_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    builder.RegisterCallbackGenericService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }

  std::shared_ptr<grpc::ChannelCredentials> SiteCredentials(const fs::path& site_dir,
                                                            const std::string& site) {
    auto creds = LoadClientCredentials(pki_->ca_cert(), site_dir / (site + ".crt"),
                                       site_dir / (site + ".key"));
    EXPECT_TRUE(creds.ok()) << creds.status();
    return creds.ok() ? *creds : nullptr;
  }
  // Built without LoadClientCredentials' checks, as an attacker's own client would be.
  std::shared_ptr<grpc::ChannelCredentials> RawCredentials(const fs::path& cert,
                                                           const fs::path& key) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = Read(pki_->ca_cert());
    if (!cert.empty()) options.pem_cert_chain = Read(cert);
    if (!key.empty()) options.pem_private_key = Read(key);
    return grpc::SslCredentials(options);
  }

  // A fresh channel (own subchannel pool, so no connection is shared between calls).
  std::shared_ptr<grpc::Channel> Channel(std::shared_ptr<grpc::ChannelCredentials> creds,
                                         const std::string& host = "localhost") {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(host + ":" + std::to_string(port_), creds, args);
  }

  static CallResult Call(const std::shared_ptr<grpc::Channel>& channel) {
    grpc::GenericStub stub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 5s);
    grpc::Slice slice(std::string("hello"));
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&context, "/fedjoint.test.WhoAmI/Ask", grpc::StubOptions(), &request, &response,
                   [&done](grpc::Status status) { done.set_value(std::move(status)); });
    CallResult result;
    result.status = done.get_future().get();
    auto trailing = context.GetServerTrailingMetadata();
    if (auto it = trailing.find("fedjoint-site"); it != trailing.end()) {
      result.site.assign(it->second.data(), it->second.size());
    }
    return result;
  }

  std::unique_ptr<PkiLayout> pki_;
  fs::path site_a_;
  fs::path site_b_;
  std::shared_ptr<RevocationList> revocations_;
  std::unique_ptr<WhoAmIService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(TlsTest, SiteWithCertificateFromConsortiumIsAuthenticatedByName) {
  StartServer(/*handshake_revocation=*/false);
  CallResult result = Call(Channel(SiteCredentials(site_a_, "site-a")));
  EXPECT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.site, "site-a");
  result = Call(Channel(SiteCredentials(site_b_, "site-b"), "127.0.0.1"));
  EXPECT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.site, "site-b");
}

TEST_F(TlsTest, ChannelReachesReadyOnlyWithConsortiumCertificate) {
  StartServer(/*handshake_revocation=*/false);
  auto good = Channel(SiteCredentials(site_a_, "site-a"));
  EXPECT_TRUE(good->WaitForConnected(std::chrono::system_clock::now() + 5s));
  EXPECT_EQ(good->GetState(false), GRPC_CHANNEL_READY);
}

TEST_F(TlsTest, CertificateFromAnotherConsortiumIsRefused) {
  StartServer(/*handshake_revocation=*/false);
  PkiLayout other = MakePki("other");
  fs::path intruder = MakeSite(other, "site-a", "other-sites");
  // The intruder trusts our server (has our CA) but presents a certificate from its own CA.
  CallResult result =
      Call(Channel(RawCredentials(intruder / "site-a.crt", intruder / "site-a.key")));
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << result.status.error_message();
  EXPECT_EQ(result.site, "");
}

TEST_F(TlsTest, ClientWithoutCertificateIsRefused) {
  StartServer(/*handshake_revocation=*/false);
  CallResult result = Call(Channel(RawCredentials({}, {})));
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << result.status.error_message();
}

TEST_F(TlsTest, CoordinatorCertificateCannotBeUsedAsClientCertificate) {
  StartServer(/*handshake_revocation=*/false);
  CallResult result = Call(Channel(RawCredentials(pki_->server_cert(), pki_->server_key())));
  EXPECT_FALSE(result.status.ok());
  EXPECT_EQ(result.site, "");
}

TEST_F(TlsTest, SiteRefusesServerWithWrongHostName) {
  StartServer(/*handshake_revocation=*/false);
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetSslTargetNameOverride("coordinator.example.org");  // not in the server's SANs
  auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port_),
                                           SiteCredentials(site_a_, "site-a"), args);
  EXPECT_EQ(Call(channel).status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, RevokedSiteIsRefusedPerRpcWithoutRestart) {
  StartServer(/*handshake_revocation=*/false);
  auto channel = Channel(SiteCredentials(site_a_, "site-a"));
  ASSERT_TRUE(Call(channel).status.ok());

  ASSERT_TRUE(RevokeSite(pki_->root, "site-a").ok());
  std::this_thread::sleep_for(20ms);
  // Same connection, next RPC.
  CallResult result = Call(channel);
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(result.status.error_message(), HasSubstr("certificate of site 'site-a'"));
  EXPECT_THAT(result.status.error_message(), HasSubstr("is revoked"));
  EXPECT_TRUE(Call(Channel(SiteCredentials(site_b_, "site-b"))).status.ok());
}

TEST_F(TlsTest, RevokedSiteIsRefusedAtHandshakeWhenEnabled) {
  StartServer(/*handshake_revocation=*/true);
  CallResult before = Call(Channel(SiteCredentials(site_a_, "site-a")));
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();
  EXPECT_EQ(before.site, "site-a");

  ASSERT_TRUE(RevokeSite(pki_->root, "site-a").ok());
  std::this_thread::sleep_for(20ms);
  CallResult after = Call(Channel(SiteCredentials(site_a_, "site-a")));
  EXPECT_EQ(after.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << after.status.error_message();
  EXPECT_EQ(after.site, "");
  CallResult other = Call(Channel(SiteCredentials(site_b_, "site-b")));
  EXPECT_TRUE(other.status.ok()) << other.status.error_message();
  EXPECT_EQ(other.site, "site-b");
}

TEST_F(TlsTest, HandshakeRevocationModeStillRequiresConsortiumCertificate) {
  StartServer(/*handshake_revocation=*/true);
  EXPECT_EQ(Call(Channel(RawCredentials({}, {}))).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);
  PkiLayout other = MakePki("other");
  fs::path intruder = MakeSite(other, "site-a", "other-sites");
  EXPECT_EQ(Call(Channel(RawCredentials(intruder / "site-a.crt", intruder / "site-a.key")))
                .status.error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, CredentialLoadingNamesTheFaultyFile) {
  auto missing = LoadServerCredentials(pki_->ca_cert(), dir_ / "absent.crt", pki_->server_key());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("absent.crt"));

  auto mismatched = LoadServerCredentials(pki_->ca_cert(), pki_->server_cert(), pki_->ca_key());
  EXPECT_EQ(mismatched.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(mismatched.status().message(),
              HasSubstr("ca.key: private key does not match the certificate"));

  auto site_as_server =
      LoadServerCredentials(pki_->ca_cert(), site_a_ / "site-a.crt", site_a_ / "site-a.key");
  EXPECT_EQ(site_as_server.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(site_as_server.status().message(),
              HasSubstr("site-a.crt: not a valid serverAuth certificate of the CA in"));

  PkiLayout other = MakePki("other");
  auto wrong_ca =
      LoadClientCredentials(other.ca_cert(), site_a_ / "site-a.crt", site_a_ / "site-a.key");
  EXPECT_EQ(wrong_ca.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(wrong_ca.status().message(), HasSubstr("not a valid clientAuth certificate"));

  ASSERT_TRUE(base::WriteFileAtomically(dir_ / "junk.key", "junk").ok());
  auto junk = LoadClientCredentials(pki_->ca_cert(), site_a_ / "site-a.crt", dir_ / "junk.key");
  EXPECT_EQ(junk.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(junk.status().message(), HasSubstr("junk.key: not a PEM private key"));
}

// Runs `openssl s_client` against the server with one protocol version forced; returns its output.
std::string ProbeTls(int port, const std::string& version_flag, const fs::path& cert,
                     const fs::path& key, const fs::path& ca) {
  std::string command = "timeout 10 openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                        " " + version_flag + " -cert " + cert.string() + " -key " + key.string() +
                        " -CAfile " + ca.string() + " -alpn h2 </dev/null 2>&1";
  std::string output;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[4096];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
    ::pclose(pipe);
  }
  return output;
}

// Both server variants (plain SSL credentials and the experimental TLS credentials used for
// handshake revocation) must accept TLS 1.2 and refuse TLS 1.1.
class TlsVersionTest : public TlsTest, public ::testing::WithParamInterface<bool> {};

TEST_P(TlsVersionTest, ServerRefusesTlsOlderThan12) {
  if (std::system("openssl version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no openssl binary";
  StartServer(/*handshake_revocation=*/GetParam());
  fs::path cert = site_a_ / "site-a.crt";
  fs::path key = site_a_ / "site-a.key";
  std::string tls12 = ProbeTls(port_, "-tls1_2", cert, key, pki_->ca_cert());
  EXPECT_THAT(tls12, HasSubstr("Protocol  : TLSv1.2")) << tls12;
  EXPECT_THAT(tls12, Not(HasSubstr("Cipher is (NONE)"))) << "the probe itself must work: " << tls12;
  // SECLEVEL=0 lets the probe's own OpenSSL offer TLS 1.1, so a refusal comes from the server.
  std::string tls11 =
      ProbeTls(port_, "-tls1_1 -cipher DEFAULT@SECLEVEL=0", cert, key, pki_->ca_cert());
  EXPECT_THAT(tls11, ContainsRegex("and written [1-9][0-9]* bytes"))
      << "a hello was sent: " << tls11;
  EXPECT_THAT(tls11, HasSubstr("Cipher is (NONE)")) << tls11;
}

INSTANTIATE_TEST_SUITE_P(ServerVariants, TlsVersionTest, ::testing::Bool(), [](const auto& info) {
  return info.param ? "HandshakeRevocation" : "SslCredentials";
});

}  // namespace
}  // namespace fedjoint::common::security
