# Helpers that give every project target the same flags, and torch targets the shared PCH.

# Warnings for project code only (dependencies come in as SYSTEM include dirs via imported targets).
function(fedjoint_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wnon-virtual-dtor -Wimplicit-fallthrough)
endfunction()

# One precompiled <torch/torch.h>, built once and reused by every torch translation unit.
# Every torch TU and the PCH itself compile with -pthread: gRPC targets add it (it defines
# _REENTRANT), and GCC ignores a PCH built with a different _REENTRANT ("not used because
# `_REENTRANT' is defined"), which made each site_agent TU parse <torch/torch.h> from scratch.
# Threads::Threads alone does not add the flag with glibc >= 2.34. -Winvalid-pch shows mismatches.
if(FEDJOINT_USE_PCH)
  add_library(fedjoint_torch_pch STATIC "${PROJECT_SOURCE_DIR}/cmake/torch_pch.cc")
  target_link_libraries(fedjoint_torch_pch PUBLIC torch Threads::Threads)
  target_precompile_headers(fedjoint_torch_pch PRIVATE <torch/torch.h>)
  target_compile_options(fedjoint_torch_pch PUBLIC -Winvalid-pch -pthread)
endif()

function(fedjoint_use_torch target)
  target_link_libraries(${target} PUBLIC torch Threads::Threads)
  if(FEDJOINT_USE_PCH)
    target_precompile_headers(${target} REUSE_FROM fedjoint_torch_pch)
    target_compile_options(${target} PRIVATE -Winvalid-pch -pthread)
  endif()
endfunction()

# fedjoint_library(<name> SOURCES ... [DEPS ...] [PRIVATE_DEPS ...] [TORCH])
# A static library of one common/ module. Includes are from the repository root.
function(fedjoint_library name)
  cmake_parse_arguments(ARG "TORCH" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC "${PROJECT_SOURCE_DIR}" "${PROJECT_BINARY_DIR}/generated")
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  fedjoint_warnings(${name})
  if(ARG_TORCH)
    fedjoint_use_torch(${name})
  endif()
endfunction()
