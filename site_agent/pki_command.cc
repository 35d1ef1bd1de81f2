#include "site_agent/pki_command.h"

#include <iostream>
#include <memory>
#include <string>

#include "common/security/pki.h"

namespace fedjoint::site_agent {

void AddPkiCommand(common::cli::Program& program) {
  struct Options {
    std::string site;
    std::string out;
    bool force = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* pki = program.app().add_subcommand("pki", "This site's key and certificate request");
  pki->require_subcommand(1);
  CLI::App* sub = pki->add_subcommand(
      "request", "Generate the site's private key and a certificate signing request");
  sub->add_option("--site", options->site,
                  "Site name, as the consortium knows it ([a-z0-9][a-z0-9-]{0,62})")
      ->required();
  sub->add_option("--out", options->out, "Folder for NAME.key and NAME.csr")->required();
  sub->add_flag("--force", options->force, "Replace an existing key for this site");
  program.SetAction(sub, [options]() -> absl::Status {
    auto files = common::security::CreateSiteRequest(options->site, options->out, options->force);
    if (!files.ok()) return files.status();
    std::cout << "Wrote the private key " << files->key.string()
              << " (keep it here; it never leaves the site)\n"
              << "and the certificate signing request " << files->csr.string() << "\n"
              << "Send " << files->csr.filename().string()
              << " to the consortium operator, who runs 'fedjoint-coordinator pki sign'. Put the "
                 "returned "
              << options->site << ".crt and ca.crt next to the key.\n";
    return absl::OkStatus();
  });
}

}  // namespace fedjoint::site_agent
