#include "coordinator/pki_command.h"

#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "common/security/pki.h"

namespace fedjoint::coordinator {
namespace {

namespace security = common::security;

void AddInit(common::cli::Program& program, CLI::App* pki) {
  struct Options {
    std::string out;
    std::vector<std::string> hosts;
    std::vector<std::string> ips;
    bool force = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* sub = pki->add_subcommand(
      "init",
      "Create the consortium CA, the coordinator's TLS certificate and the model-signing "
      "certificate");
  sub->add_option("--out", options->out, "PKI folder to create (e.g. state/pki)")->required();
  sub->add_option("--host", options->hosts,
                  "DNS name sites use to reach the coordinator (repeatable; default localhost)");
  sub->add_option("--ip", options->ips,
                  "IP address sites use to reach the coordinator (repeatable; default 127.0.0.1)");
  sub->add_flag("--force", options->force,
                "Replace an existing CA (every certificate it issued stops being trusted)");
  program.SetAction(sub, [options]() -> absl::Status {
    security::PkiInitOptions init;
    if (!options->hosts.empty()) init.server_hosts = options->hosts;
    if (!options->ips.empty()) init.server_ips = options->ips;
    init.force = options->force;
    if (absl::Status status = security::InitPki(options->out, init); !status.ok()) return status;
    security::PkiLayout layout(options->out);
    std::vector<std::string> names;
    for (const auto& host : init.server_hosts) names.push_back("DNS:" + host);
    for (const auto& ip : init.server_ips) names.push_back("IP:" + ip);
    std::cout << "Created the consortium PKI in " << layout.root.string() << "\n"
              << "  " << layout.ca_cert().string()
              << "       CA certificate: give it to every site\n"
              << "  " << layout.ca_key().string()
              << "       CA private key: keep it offline (0600)\n"
              << "  " << layout.server_cert().string() << "   coordinator TLS certificate ("
              << absl::StrJoin(names, ", ") << ")\n"
              << "  " << layout.signing_cert().string() << "  model-signing certificate\n"
              << "  " << layout.crl().string() << "      revocation list\n"
              << "Next: each site runs 'fedjoint-site pki request --site NAME --out DIR' and sends "
                 "you NAME.csr; then run 'fedjoint-coordinator pki sign NAME.csr --pki "
              << layout.root.string() << "'.\n";
    return absl::OkStatus();
  });
}

void AddSign(common::cli::Program& program, CLI::App* pki) {
  struct Options {
    std::string csr;
    std::string pki_dir;
    int days = security::kDefaultSiteLifetimeDays;
    bool force = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* sub =
      pki->add_subcommand("sign", "Issue a site's client certificate from its signing request");
  sub->add_option("csr", options->csr, "The site's NAME.csr (from 'fedjoint-site pki request')")
      ->required();
  sub->add_option("--pki", options->pki_dir, "PKI folder made by 'pki init'")->required();
  sub->add_option("--days", options->days, "Validity in days")->capture_default_str();
  sub->add_flag("--force", options->force,
                "Issue even if the site already holds a valid certificate");
  program.SetAction(sub, [options]() -> absl::Status {
    security::IssueOptions issue;
    issue.days = options->days;
    issue.force = options->force;
    auto issued = security::SignSiteRequest(options->pki_dir, options->csr, issue);
    if (!issued.ok()) return issued.status();
    security::PkiLayout layout(options->pki_dir);
    std::cout << "Issued a certificate for site '" << issued->name << "' (serial " << issued->serial
              << ", valid until " << issued->not_after << "):\n"
              << "  " << layout.issued_cert(issued->name).string() << "\n"
              << "Send it to the site together with " << layout.ca_cert().string() << ".\n";
    return absl::OkStatus();
  });
}

void AddRevoke(common::cli::Program& program, CLI::App* pki) {
  struct Options {
    std::string name;
    std::string pki_dir;
  };
  auto options = std::make_shared<Options>();
  CLI::App* sub = pki->add_subcommand(
      "revoke",
      "Revoke every certificate of a site and rewrite the CRL (takes effect on a running "
      "coordinator within seconds)");
  sub->add_option("name", options->name, "Site name")->required();
  sub->add_option("--pki", options->pki_dir, "PKI folder made by 'pki init'")->required();
  program.SetAction(sub, [options]() -> absl::Status {
    auto revoked = security::RevokeSite(options->pki_dir, options->name);
    if (!revoked.ok()) return revoked.status();
    std::vector<std::string> serials;
    for (const auto& cert : *revoked) serials.push_back(cert.serial);
    std::cout << "Revoked " << revoked->size() << " certificate(s) of site '" << options->name
              << "' (serial " << absl::StrJoin(serials, ", ") << ").\n"
              << "Updated " << security::PkiLayout(options->pki_dir).crl().string() << "\n";
    return absl::OkStatus();
  });
}

void AddList(common::cli::Program& program, CLI::App* pki) {
  auto pki_dir = std::make_shared<std::string>();
  CLI::App* sub = pki->add_subcommand("list", "List issued site certificates and their state");
  sub->add_option("--pki", *pki_dir, "PKI folder made by 'pki init'")->required();
  program.SetAction(sub, [pki_dir]() -> absl::Status {
    auto list = security::ListCertificates(*pki_dir);
    if (!list.ok()) return list.status();
    std::time_t now = std::time(nullptr);
    std::printf("%-24s %-34s %-22s %s\n", "SITE", "SERIAL", "NOT AFTER", "STATE");
    for (const auto& cert : *list) {
      std::string state = cert.revoked()   ? "revoked " + cert.revoked_at
                          : cert.Live(now) ? "valid"
                                           : "expired";
      std::printf("%-24s %-34s %-22s %s\n", cert.name.c_str(), cert.serial.c_str(),
                  cert.not_after.c_str(), state.c_str());
    }
    if (list->empty()) std::printf("(no site certificates issued yet)\n");
    return absl::OkStatus();
  });
}

void AddCrl(common::cli::Program& program, CLI::App* pki) {
  auto pki_dir = std::make_shared<std::string>();
  CLI::App* sub = pki->add_subcommand(
      "crl", "Re-sign the revocation list with a fresh validity (run within a year of the last)");
  sub->add_option("--pki", *pki_dir, "PKI folder made by 'pki init'")->required();
  program.SetAction(sub, [pki_dir]() -> absl::Status {
    if (absl::Status status = security::RefreshCrl(*pki_dir); !status.ok()) return status;
    std::cout << "Rewrote " << security::PkiLayout(*pki_dir).crl().string() << "\n";
    return absl::OkStatus();
  });
}

}  // namespace

void AddPkiCommand(common::cli::Program& program) {
  CLI::App* pki = program.app().add_subcommand(
      "pki", "Consortium certificate authority: init, sign, revoke, list, crl");
  pki->require_subcommand(1);
  AddInit(program, pki);
  AddSign(program, pki);
  AddRevoke(program, pki);
  AddList(program, pki);
  AddCrl(program, pki);
}

}  // namespace fedjoint::coordinator
