// Who is on the other end of an RPC, from the client certificate the TLS handshake verified.
#pragma once

#include <string>

#include <grpcpp/security/auth_context.h>

#include "absl/status/statusor.h"
#include "common/security/revocation_list.h"

namespace fedjoint::common::security {

struct PeerCertificate {
  std::string site;    // the certificate's CN, a valid site name
  std::string serial;  // upper-case hex (see NormalizeSerialHex)
};

// The verified client certificate's CN (property x509_common_name). Unauthenticated when the
// connection carries no verified certificate or the CN is not a valid site name.
absl::StatusOr<std::string> PeerSiteName(const grpc::AuthContext& context);

// CN and serial number, parsed from the peer's certificate (property x509_pem_cert); also checks
// that the certificate is meant for clients (EKU clientAuth).
absl::StatusOr<PeerCertificate> GetPeerCertificate(const grpc::AuthContext& context);

// What the transport calls on every RPC: the peer's site name if its certificate is not
// revoked, otherwise Unauthenticated ("certificate of site 'x' (serial ...) is revoked").
absl::StatusOr<std::string> AuthenticatePeer(const grpc::AuthContext& context,
                                             RevocationList& revocations);

}  // namespace fedjoint::common::security
