// The only translation unit that includes ITK's IO headers (they cost seconds per TU).
//
// Readers and writers name their ImageIO explicitly from the file extension instead of asking
// ITK's IO factories. Factories need per-executable registration (UseITK's generated manager or
// RegisterOneFactory calls), which silently goes missing in executables that merely link this
// library ("There are no registered IO factories"); naming the IO also pins each extension to
// the format users expect instead of whichever factory claims the file first.
#include "common/data/volume_io.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <string_view>
#include <system_error>
#include <utility>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <itkGDCMImageIO.h>
#include <itkGDCMSeriesFileNames.h>
#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkImageSeriesReader.h>
#include <itkMetaImageIO.h>
#include <itkNiftiImageIO.h>
#include <itkNrrdImageIO.h>
#include <itkOutputWindow.h>

#include "common/base/atomic_file.h"
#include "common/data/file_integrity.h"
#include "common/log/logging.h"

namespace fedjoint::common::data {
namespace {

namespace fs = std::filesystem;

using FloatImage = itk::Image<float, 3>;

// Refuses headers that promise absurd sizes before ITK tries to allocate them (4 GiB of float32).
constexpr int64_t kMaxVoxels = int64_t{1} << 30;

// ITK reports warnings (e.g. non-uniform DICOM slice spacing) through a global OutputWindow that
// prints to stderr; route them to the "data" logger so they respect the configured log format.
class LogOutputWindow : public itk::OutputWindow {
 public:
  using Self = LogOutputWindow;
  using Pointer = itk::SmartPointer<Self>;
  itkNewMacro(Self);

  void DisplayText(const char* text) override { Log(spdlog::level::info, text); }
  void DisplayErrorText(const char* text) override { Log(spdlog::level::err, text); }
  void DisplayWarningText(const char* text) override { Log(spdlog::level::warn, text); }
  void DisplayGenericOutputText(const char* text) override { Log(spdlog::level::info, text); }
  void DisplayDebugText(const char* text) override { Log(spdlog::level::debug, text); }

 private:
  // ITK's text is "WARNING: In <source file>, line N\n<Class> (0x...): message\n\n": keep the
  // class and message on one line.
  static void Log(spdlog::level::level_enum level, const char* text) {
    std::string message(text == nullptr ? "" : text);
    if (message.starts_with("WARNING: In ") || message.starts_with("ERROR: In ")) {
      const size_t newline = message.find('\n');
      message.erase(0, newline == std::string::npos ? 0 : newline + 1);
    }
    std::replace(message.begin(), message.end(), '\n', ' ');
    while (!message.empty() && std::isspace(static_cast<unsigned char>(message.back()))) {
      message.pop_back();
    }
    log::Get("data")->log(level, "ITK: {}", message);
  }
};

void InstallItkLogging() {
  static std::once_flag once;
  std::call_once(once, [] { itk::OutputWindow::SetInstance(LogOutputWindow::New()); });
}

enum class Format { kNifti, kNrrd, kMeta };

struct FileFormat {
  Format format;
  std::string extension;    // as spelled in the path, e.g. ".NII.GZ"
  std::string_view suffix;  // lower case, as ITK's IOs expect, e.g. ".nii.gz"
  bool detached_header;     // .nhdr/.mhd: header and voxels in two files
  const char* name;
};

// The format named by the file's extension (case-insensitive), or nullopt.
std::optional<FileFormat> FormatOf(const fs::path& path) {
  const std::string filename = path.filename().string();
  std::string lower = filename;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  struct Known {
    std::string_view suffix;
    Format format;
    bool detached;
    const char* name;
  };
  static constexpr Known kKnown[] = {
      {".nii.gz", Format::kNifti, false, "NIfTI"}, {".nii", Format::kNifti, false, "NIfTI"},
      {".nrrd", Format::kNrrd, false, "NRRD"},     {".nhdr", Format::kNrrd, true, "NRRD"},
      {".mha", Format::kMeta, false, "MetaImage"}, {".mhd", Format::kMeta, true, "MetaImage"},
  };
  for (const Known& known : kKnown) {
    if (lower.size() > known.suffix.size() && lower.ends_with(known.suffix)) {
      return FileFormat{known.format, filename.substr(filename.size() - known.suffix.size()),
                        known.suffix, known.detached, known.name};
    }
  }
  return std::nullopt;
}

itk::ImageIOBase::Pointer MakeImageIO(Format format) {
  switch (format) {
    case Format::kNifti:
      return itk::NiftiImageIO::New().GetPointer();
    case Format::kNrrd:
      return itk::NrrdImageIO::New().GetPointer();
    case Format::kMeta:
      break;
  }
  return itk::MetaImageIO::New().GetPointer();
}

// ITK's what() repeats the source location; the description alone says what went wrong. Some
// (NRRD's) span several lines: keep them on one.
std::string Describe(const itk::ExceptionObject& e) {
  std::string text = e.GetDescription();
  std::replace(text.begin(), text.end(), '\n', ' ');
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

absl::Status OutOfMemory(const fs::path& path, std::string_view what) {
  return absl::ResourceExhaustedError(
      fmt::format("{}: not enough memory to read the volume: {}", path.string(), what));
}

std::string JoinSizes(const std::vector<int64_t>& sizes) {
  return fmt::format("{}", fmt::join(sizes, "x"));
}

Geometry GeometryOf(const FloatImage& image) {
  Geometry g;
  const auto size = image.GetLargestPossibleRegion().GetSize();
  const auto& spacing = image.GetSpacing();
  const auto& origin = image.GetOrigin();
  const auto& direction = image.GetDirection();
  for (unsigned c = 0; c < 3; ++c) {
    g.size[c] = static_cast<int64_t>(size[c]);
    g.spacing[c] = spacing[c];
    g.origin[c] = origin[c];
    for (unsigned r = 0; r < 3; ++r) g.direction[r * 3 + c] = direction(r, c);
  }
  return g;
}

Volume ToVolume(const FloatImage& image) {
  Volume volume;
  volume.geometry = GeometryOf(image);
  const Geometry& g = volume.geometry;
  volume.voxels = at::empty({g.size[2], g.size[1], g.size[0]}, at::kFloat);
  std::memcpy(volume.voxels.data_ptr<float>(), image.GetBufferPointer(),
              static_cast<size_t>(g.NumVoxels()) * sizeof(float));
  return volume;
}

absl::Status CheckVoxelCount(const std::vector<int64_t>& sizes, const fs::path& path) {
  int64_t count = 1;
  for (int64_t s : sizes) {
    if (s <= 0 || count > kMaxVoxels / s) {
      return absl::ResourceExhaustedError(
          fmt::format("{}: image size {} exceeds the limit of {} voxels", path.string(),
                      JoinSizes(sizes), kMaxVoxels));
    }
    count *= s;
  }
  return absl::OkStatus();
}

absl::StatusOr<FloatImage::Pointer> ReadImageFile(const fs::path& path) {
  std::optional<FileFormat> format = FormatOf(path);
  if (!format) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: unsupported file extension (expected .nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd, or a "
        "folder with a DICOM series)",
        path.string()));
  }
  itk::ImageIOBase::Pointer io = MakeImageIO(format->format);
  if (!io->CanReadFile(path.c_str())) {
    return absl::DataLossError(fmt::format("{}: not a readable {} file (corrupt or not {})",
                                           path.string(), format->name, format->name));
  }
  try {
    io->SetFileName(path.string());
    io->ReadImageInformation();
  } catch (const itk::ExceptionObject& e) {
    return absl::DataLossError(
        fmt::format("{}: cannot read the {} header: {}", path.string(), format->name, Describe(e)));
  }
  std::vector<int64_t> sizes;
  for (unsigned d = 0; d < io->GetNumberOfDimensions(); ++d) {
    sizes.push_back(static_cast<int64_t>(io->GetDimensions(d)));
  }
  if (sizes.size() != 3) {
    return absl::InvalidArgumentError(fmt::format("{}: image is {}D ({}); a 3D volume is required",
                                                  path.string(), sizes.size(), JoinSizes(sizes)));
  }
  if (io->GetNumberOfComponents() != 1) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: pixels have {} components ({}); a scalar image is required", path.string(),
        io->GetNumberOfComponents(), itk::ImageIOBase::GetPixelTypeAsString(io->GetPixelType())));
  }
  if (absl::Status s = CheckVoxelCount(sizes, path); !s.ok()) return s;
  const uint64_t data_bytes = io->GetImageSizeInBytes();
  if (format->format == Format::kNifti) {
    if (absl::Status s = internal::CheckNiftiComplete(path, data_bytes); !s.ok()) return s;
  } else if (format->format == Format::kMeta) {
    if (absl::Status s = internal::CheckMetaImageComplete(path, data_bytes); !s.ok()) return s;
  }
  auto reader = itk::ImageFileReader<FloatImage>::New();
  reader->SetImageIO(io);
  reader->SetFileName(path.string());
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    return absl::DataLossError(
        fmt::format("{}: cannot read the voxels: {}", path.string(), Describe(e)));
  } catch (const std::bad_alloc& e) {
    return OutOfMemory(path, e.what());
  }
  return FloatImage::Pointer(reader->GetOutput());
}

// One readable volume in a DICOM folder.
struct DicomSeries {
  std::string uid;                 // SeriesInstanceUID (0020,000E)
  std::string series_id;           // GDCM's identifier: the UID refined by per-volume details
  std::vector<std::string> files;  // sorted by slice position
};

std::string TrimDicomValue(std::string value) {
  while (!value.empty() && (value.back() == ' ' || value.back() == '\0')) value.pop_back();
  return value;
}

absl::StatusOr<std::vector<DicomSeries>> ScanDicomFolder(const fs::path& folder) {
  std::vector<DicomSeries> series;
  try {
    auto names = itk::GDCMSeriesFileNames::New();
    // Details split a SeriesInstanceUID holding several volumes (e.g. a 3-plane localizer, DTI)
    // into one identifier per volume; the plain UID, what users see in viewers, is read back from
    // each volume's first file.
    names->SetUseSeriesDetails(true);
    names->SetDirectory(folder.string());
    for (const std::string& id : names->GetSeriesUIDs()) {
      DicomSeries entry;
      entry.series_id = id;
      entry.files = names->GetFileNames(id);
      if (entry.files.empty()) continue;
      auto io = itk::GDCMImageIO::New();
      io->SetFileName(entry.files.front());
      io->ReadImageInformation();
      std::string uid;
      entry.uid = io->GetValueFromTag("0020|000e", uid) ? TrimDicomValue(uid) : id;
      series.push_back(std::move(entry));
    }
  } catch (const itk::ExceptionObject& e) {
    return absl::DataLossError(
        fmt::format("{}: cannot scan the DICOM folder: {}", folder.string(), Describe(e)));
  }
  return series;
}

std::string DescribeSeries(const std::vector<DicomSeries>& series) {
  std::vector<std::string> parts;
  for (const DicomSeries& s : series)
    parts.push_back(fmt::format("{} ({} slices)", s.uid, s.files.size()));
  std::sort(parts.begin(), parts.end());
  return fmt::format("{}", fmt::join(parts, ", "));
}

absl::StatusOr<FloatImage::Pointer> ReadDicomSeries(const fs::path& folder,
                                                    const ReadOptions& options) {
  absl::StatusOr<std::vector<DicomSeries>> scanned = ScanDicomFolder(folder);
  if (!scanned.ok()) return scanned.status();
  const std::vector<DicomSeries>& all = *scanned;
  if (all.empty()) {
    return absl::NotFoundError(fmt::format("{}: no DICOM series in this folder", folder.string()));
  }
  const DicomSeries* chosen = nullptr;
  int matches = 0;
  for (const DicomSeries& s : all) {
    if (!options.series_uid.empty() && s.uid != options.series_uid &&
        s.series_id != options.series_uid) {
      continue;
    }
    ++matches;
    if (chosen == nullptr || s.files.size() > chosen->files.size() ||
        (s.files.size() == chosen->files.size() && s.series_id < chosen->series_id)) {
      chosen = &s;
    }
  }
  if (chosen == nullptr) {
    return absl::NotFoundError(fmt::format("{}: no DICOM series with UID {}; the folder has: {}",
                                           folder.string(), options.series_uid,
                                           DescribeSeries(all)));
  }
  if (matches > 1) {
    log::Get("data")->warn("{}: series {} holds {} volumes; reading the largest ({} slices)",
                           folder.string(), chosen->uid, matches, chosen->files.size());
  }

  auto io = itk::GDCMImageIO::New();
  try {
    io->SetFileName(chosen->files.front());
    io->ReadImageInformation();
  } catch (const itk::ExceptionObject& e) {
    return absl::DataLossError(
        fmt::format("{}: cannot read the DICOM header: {}", chosen->files.front(), Describe(e)));
  }
  if (io->GetNumberOfComponents() != 1) {
    return absl::InvalidArgumentError(
        fmt::format("{}: series {} has {}-component pixels; a scalar image is required",
                    folder.string(), chosen->uid, io->GetNumberOfComponents()));
  }
  std::vector<int64_t> sizes{static_cast<int64_t>(io->GetDimensions(0)),
                             static_cast<int64_t>(io->GetDimensions(1)),
                             static_cast<int64_t>(chosen->files.size())};
  if (absl::Status s = CheckVoxelCount(sizes, folder); !s.ok()) return s;

  auto reader = itk::ImageSeriesReader<FloatImage>::New();
  reader->SetImageIO(io);
  reader->SetFileNames(chosen->files);
  reader->MetaDataDictionaryArrayUpdateOff();  // per-slice headers are not needed
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    return absl::DataLossError(fmt::format("{}: cannot read DICOM series {}: {}", folder.string(),
                                           chosen->uid, Describe(e)));
  } catch (const std::bad_alloc& e) {
    return OutOfMemory(folder, e.what());
  }
  return FloatImage::Pointer(reader->GetOutput());
}

absl::StatusOr<FloatImage::Pointer> ReadFloatImage(const fs::path& path,
                                                   const ReadOptions& options) {
  InstallItkLogging();
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (error || !fs::exists(status)) {
    return absl::NotFoundError(fmt::format("{}: no such file or folder", path.string()));
  }
  if (fs::is_directory(status)) return ReadDicomSeries(path, options);
  if (!options.series_uid.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: a series UID ({}) was given but this is a file, not a DICOM folder",
                    path.string(), options.series_uid));
  }
  return ReadImageFile(path);
}

// Labels in a volume read as float32 -> uint8 (all in [0, 255]) or int16.
absl::StatusOr<at::Tensor> ToLabelVoxels(const at::Tensor& values, const fs::path& path) {
  if (values.numel() == 0) return values.to(at::kByte);
  if (!at::isfinite(values).all().item<bool>()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: label volume has NaN or infinite values", path.string()));
  }
  if (!values.eq(values.round()).all().item<bool>()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: label volume has non-integer values; is this an image?", path.string()));
  }
  const double low = values.min().item<double>();
  const double high = values.max().item<double>();
  if (low >= 0 && high <= 255) return values.to(at::kByte);
  if (low >= -32768 && high <= 32767) return values.to(at::kShort);
  return absl::InvalidArgumentError(fmt::format(
      "{}: label values span [{}, {}], outside the int16 range", path.string(), low, high));
}

template <typename Pixel>
absl::Status WriteTyped(const Volume& volume, const fs::path& path, const FileFormat& format,
                        const WriteOptions& options) {
  using ImageType = itk::Image<Pixel, 3>;
  const Geometry& g = volume.geometry;
  auto image = ImageType::New();
  typename ImageType::RegionType region;
  typename ImageType::SpacingType spacing;
  typename ImageType::PointType origin;
  typename ImageType::DirectionType direction;
  for (unsigned c = 0; c < 3; ++c) {
    region.SetSize(c, static_cast<itk::SizeValueType>(g.size[c]));
    spacing[c] = g.spacing[c];
    origin[c] = g.origin[c];
    for (unsigned r = 0; r < 3; ++r) direction(r, c) = g.direction[r * 3 + c];
  }
  image->SetRegions(region);
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  // The writer only reads the buffer; ITK's container API wants a non-const pointer.
  image->GetPixelContainer()->SetImportPointer(const_cast<Pixel*>(volume.voxels.data_ptr<Pixel>()),
                                               static_cast<itk::SizeValueType>(g.NumVoxels()),
                                               /*LetContainerManageMemory=*/false);

  // ITK picks the encoding from the file name, so the temporary ends with the real extension
  // (in lower case: ITK's NIfTI writer does not recognise ".NII.GZ").
  const std::string filename = path.filename().string();
  const std::string stem = filename.substr(0, filename.size() - format.extension.size());
  std::random_device random;
  const fs::path temp_path =
      path.parent_path() / fmt::format(".{}.tmp{}_{}{}", stem, ::getpid(), random(), format.suffix);
  auto writer = itk::ImageFileWriter<ImageType>::New();
  writer->SetImageIO(MakeImageIO(format.format));
  writer->SetFileName(temp_path.string());
  writer->SetUseCompression(options.compress);
  writer->SetInput(image);
  try {
    image->SetDirection(direction);
    writer->Update();
  } catch (const itk::ExceptionObject& e) {
    std::error_code ignored;
    fs::remove(temp_path, ignored);
    return absl::FailedPreconditionError(
        fmt::format("{}: cannot write the {} file: {}", path.string(), format.name, Describe(e)));
  }
  return base::CommitTemporaryFile(temp_path, path);
}

}  // namespace

absl::StatusOr<Volume> ReadVolume(const fs::path& path, const ReadOptions& options) {
  absl::StatusOr<FloatImage::Pointer> image = ReadFloatImage(path, options);
  if (!image.ok()) return image.status();
  try {
    return ToVolume(**image);
  } catch (const c10::Error& e) {
    return OutOfMemory(path, e.what_without_backtrace());
  }
}

absl::StatusOr<Volume> ReadLabelVolume(const fs::path& path, const ReadOptions& options) {
  // Read through float32: exact for every integer in int16's range and beyond, so one reader
  // serves all on-disk label types and non-integer values can be detected instead of truncated.
  absl::StatusOr<FloatImage::Pointer> image = ReadFloatImage(path, options);
  if (!image.ok()) return image.status();
  try {
    Volume volume = ToVolume(**image);
    *image = nullptr;  // free ITK's copy before the conversion allocates
    absl::StatusOr<at::Tensor> labels = ToLabelVoxels(volume.voxels, path);
    if (!labels.ok()) return labels.status();
    volume.voxels = *std::move(labels);
    return volume;
  } catch (const c10::Error& e) {
    return OutOfMemory(path, e.what_without_backtrace());
  }
}

absl::Status WriteVolume(const Volume& volume, const fs::path& path, const WriteOptions& options) {
  InstallItkLogging();
  std::optional<FileFormat> format = FormatOf(path);
  if (!format) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: unsupported file extension for writing (expected .nii, .nii.gz, .nrrd or .mha)",
        path.string()));
  }
  if (format->detached_header) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: detached-header files ({}) cannot be written atomically; use .nrrd or .mha",
        path.string(), format->extension));
  }
  if (absl::Status s = ValidateVolume(volume, path.string()); !s.ok()) return s;
  const fs::path folder = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::error_code error;
  if (!fs::is_directory(folder, error)) {
    return absl::NotFoundError(
        fmt::format("{}: the folder {} does not exist", path.string(), folder.string()));
  }
  switch (volume.voxels.scalar_type()) {
    case at::kByte:
      return WriteTyped<uint8_t>(volume, path, *format, options);
    case at::kShort:
      return WriteTyped<int16_t>(volume, path, *format, options);
    default:
      return WriteTyped<float>(volume, path, *format, options);
  }
}

absl::StatusOr<std::vector<std::string>> ListDicomSeries(const fs::path& folder) {
  InstallItkLogging();
  std::error_code error;
  if (!fs::is_directory(folder, error)) {
    return absl::NotFoundError(fmt::format("{}: no such folder", folder.string()));
  }
  absl::StatusOr<std::vector<DicomSeries>> scanned = ScanDicomFolder(folder);
  if (!scanned.ok()) return scanned.status();
  std::vector<std::string> uids;
  for (const DicomSeries& s : *scanned) uids.push_back(s.uid);
  std::sort(uids.begin(), uids.end());
  uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
  return uids;
}

}  // namespace fedjoint::common::data
