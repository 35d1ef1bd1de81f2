// `fedjoint-site segment --model DIR --joint J --input SCAN --output LABELS [--surfaces DIR]`:
// segments one scan (NIfTI, NRRD, MetaImage or a DICOM folder) with a consortium model and writes
// the label volume on exactly the scan's grid (size, spacing, origin, direction), optionally one
// surface mesh per bone (binary STL and OBJ, physical LPS millimetres).
//
// Trust: the model must carry a signature of the consortium's model-signing certificate, checked
// against the CA given with --ca, or the site config's tls.ca_cert (--config). A model the site
// trained itself (`fedjoint-site train`) is unsigned and needs --allow-unsigned. See
// site_agent/inference/verified_model.h for the folder layouts.
#pragma once

#include "common/cli/app.h"

namespace fedjoint::site_agent {

void AddSegmentCommand(common::cli::Program& program);

}  // namespace fedjoint::site_agent
