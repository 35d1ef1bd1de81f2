// gRPC transport credentials for the consortium: mutual TLS only. The coordinator presents
// pki/server.crt and requires every client to present a certificate that chains to the
// consortium CA; sites present their issued certificate and verify the coordinator against the
// same CA (and its host name against the certificate's SANs). There are no insecure credentials.
//
// TLS version: gRPC 1.51 has no public C++ knob for it (TlsCredentialsOptions gains
// set_min_tls_version only in later releases); its SSL credentials default to a minimum of
// TLS 1.2 and a maximum of TLS 1.3, which is what we want. The tests check that a TLS 1.1
// handshake is refused.
#pragma once

#include <filesystem>
#include <memory>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/status/statusor.h"
#include "common/security/revocation_list.h"

namespace fedjoint::common::security {

// Server credentials that REQUIRE and verify a client certificate from the CA in `ca_cert`
// (GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY). The files are checked first:
// each must parse, the key must match `cert`, and `cert` must be a currently valid serverAuth
// certificate of that CA; errors name the file.
//
// With `revocations`, the handshake also refuses client certificates listed in the CRL (through
// gRPC's experimental TLS API and a certificate verifier that asks `revocations`, which reloads
// the CRL by itself), so a revoked site cannot even open a connection. Already established
// connections are not torn down: the per-RPC check (AuthenticatePeer) covers them.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> LoadServerCredentials(
    const std::filesystem::path& ca_cert, const std::filesystem::path& cert,
    const std::filesystem::path& key, std::shared_ptr<RevocationList> revocations = nullptr);

// Channel credentials presenting `cert`/`key` (checked as above, as a clientAuth certificate)
// and trusting only the CA in `ca_cert`.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> LoadClientCredentials(
    const std::filesystem::path& ca_cert, const std::filesystem::path& cert,
    const std::filesystem::path& key);

}  // namespace fedjoint::common::security
