#include "common/security/peer_identity.h"

#include <grpc/grpc_security_constants.h>
#include <openssl/x509v3.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/security/openssl_util.h"
#include "common/security/site_name.h"

namespace fedjoint::common::security {
namespace {

// The single value of `property`, or Unauthenticated.
absl::StatusOr<std::string> SingleProperty(const grpc::AuthContext& context, const char* property) {
  std::vector<grpc::string_ref> values = context.FindPropertyValues(property);
  if (values.size() != 1) {
    return absl::UnauthenticatedError(
        absl::StrCat("peer presented no verified client certificate (", values.size(), " '",
                     property, "' properties)"));
  }
  return std::string(values[0].data(), values[0].size());
}

}  // namespace

absl::StatusOr<std::string> PeerSiteName(const grpc::AuthContext& context) {
  if (!context.IsPeerAuthenticated()) {
    return absl::UnauthenticatedError("peer is not authenticated by a client certificate");
  }
  ASSIGN_OR_RETURN(std::string cn, SingleProperty(context, GRPC_X509_CN_PROPERTY_NAME));
  if (absl::Status valid = ValidateSiteName(cn); !valid.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("peer certificate's common name is not a site: ", valid.message()));
  }
  return cn;
}

absl::StatusOr<PeerCertificate> GetPeerCertificate(const grpc::AuthContext& context) {
  ASSIGN_OR_RETURN(std::string site, PeerSiteName(context));
  ASSIGN_OR_RETURN(std::string pem, SingleProperty(context, GRPC_X509_PEM_CERT_PROPERTY_NAME));
  auto cert = ParseCertificatePem(pem, "peer certificate");
  if (!cert.ok()) return absl::UnauthenticatedError(cert.status().message());
  if (CommonName(X509_get_subject_name(cert->get())) != site) {
    return absl::UnauthenticatedError("peer certificate does not match its common name property");
  }
  std::uint32_t eku = X509_get_extended_key_usage(cert->get());
  if (eku == UINT32_MAX || (eku & XKU_SSL_CLIENT) == 0) {
    return absl::UnauthenticatedError(
        absl::StrCat("certificate of '", site, "' is not a client certificate (no clientAuth)"));
  }
  return PeerCertificate{std::move(site), SerialToHex(X509_get0_serialNumber(cert->get()))};
}

absl::StatusOr<std::string> AuthenticatePeer(const grpc::AuthContext& context,
                                             RevocationList& revocations) {
  ASSIGN_OR_RETURN(PeerCertificate peer, GetPeerCertificate(context));
  if (revocations.IsRevoked(peer.serial)) {
    return absl::UnauthenticatedError(absl::StrCat("certificate of site '", peer.site, "' (serial ",
                                                   peer.serial, ") is revoked"));
  }
  return std::move(peer.site);
}

}  // namespace fedjoint::common::security
