#include "common/security/tls_credentials.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/x509v3.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/atomic_file.h"
#include "common/base/status_macros.h"
#include "common/log/logging.h"
#include "common/security/openssl_util.h"

namespace fedjoint::common::security {
namespace {

struct IdentityPem {
  std::string ca;
  std::string cert;
  std::string key;
};

// Reads the three files and checks they fit together, so a misconfiguration fails at startup
// with the file's name instead of as an opaque handshake failure later.
absl::StatusOr<IdentityPem> LoadIdentity(const std::filesystem::path& ca_path,
                                         const std::filesystem::path& cert_path,
                                         const std::filesystem::path& key_path, int purpose,
                                         const char* purpose_name) {
  IdentityPem pem;
  ASSIGN_OR_RETURN(X509Ptr ca, ReadCertificateFile(ca_path));
  ASSIGN_OR_RETURN(X509Ptr cert, ReadCertificateFile(cert_path));
  ASSIGN_OR_RETURN(EvpPkeyPtr key, ReadPrivateKeyFile(key_path));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    DrainOpenSslErrors();
    return absl::FailedPreconditionError(absl::StrCat(
        key_path.string(), ": private key does not match the certificate ", cert_path.string()));
  }
  if (absl::Status chain = VerifyChain(cert.get(), ca.get(), purpose); !chain.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(cert_path.string(), ": not a valid ",
                                                      purpose_name, " certificate of the CA in ",
                                                      ca_path.string(), ": ", chain.message()));
  }
  ASSIGN_OR_RETURN(pem.ca, CertificateToPem(ca.get()));
  ASSIGN_OR_RETURN(pem.cert, CertificateToPem(cert.get()));
  ASSIGN_OR_RETURN(pem.key, base::ReadSmallFile(key_path, 1u << 20));
  return pem;
}

// Runs after gRPC/OpenSSL verified the client's chain: refuses certificates on the CRL.
class RevocationVerifier final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit RevocationVerifier(std::shared_ptr<RevocationList> revocations)
      : revocations_(std::move(revocations)) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> /*callback*/, grpc::Status* sync_status) override {
    grpc::string_ref pem = request->peer_cert();
    auto cert = ParseCertificatePem(std::string_view(pem.data(), pem.size()), "peer certificate");
    if (!cert.ok()) {
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  "no verifiable client certificate presented");
      return true;
    }
    std::string serial = SerialToHex(X509_get0_serialNumber(cert->get()));
    if (revocations_->IsRevoked(serial)) {
      std::string cn = CommonName(X509_get_subject_name(cert->get()));
      log::Get("security")
          ->warn("refused TLS handshake from revoked certificate of '{}' (serial {})", cn, serial);
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  absl::StrCat("certificate of '", cn, "' is revoked"));
      return true;
    }
    *sync_status = grpc::Status::OK;
    return true;
  }

  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  std::shared_ptr<RevocationList> revocations_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> LoadServerCredentials(
    const std::filesystem::path& ca_cert, const std::filesystem::path& cert,
    const std::filesystem::path& key, std::shared_ptr<RevocationList> revocations) {
  ASSIGN_OR_RETURN(IdentityPem pem,
                   LoadIdentity(ca_cert, cert, key, X509_PURPOSE_SSL_SERVER, "serverAuth"));
  if (revocations == nullptr) {
    grpc::SslServerCredentialsOptions options(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    options.pem_root_certs = pem.ca;
    options.pem_key_cert_pairs.push_back({pem.key, pem.cert});
    return grpc::SslServerCredentials(options);
  }
  auto provider = std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
      pem.ca, std::vector<grpc::experimental::IdentityKeyCertPair>{{pem.key, pem.cert}});
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<RevocationVerifier>(
          std::move(revocations)));
  return grpc::experimental::TlsServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> LoadClientCredentials(
    const std::filesystem::path& ca_cert, const std::filesystem::path& cert,
    const std::filesystem::path& key) {
  ASSIGN_OR_RETURN(IdentityPem pem,
                   LoadIdentity(ca_cert, cert, key, X509_PURPOSE_SSL_CLIENT, "clientAuth"));
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = pem.ca;
  options.pem_private_key = pem.key;
  options.pem_cert_chain = pem.cert;
  return grpc::SslCredentials(options);
}

}  // namespace fedjoint::common::security
