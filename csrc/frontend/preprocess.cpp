#include "frontend/preprocess.h"

#include "util/error.h"
#include "util/process.h"

namespace mps_shim::frontend {

const std::vector<std::string>& metal_predefines() {
  static const std::vector<std::string> defs = {
      "-D__METAL__=1", "-D__METAL_VERSION__=320", "-D__METAL_MACOS__=1", "-D__HAVE_BFLOAT__=1",
      "-D__MPS_SHIM__=1", "-DMETAL_FUNC=inline __attribute__((__always_inline__))",
      "-Dcoherent(scope)=",  // Metal 3.2's coherence qualifier: the host's memory is coherent
  };
  return defs;
}

const std::vector<std::string>& metal_header_names() {
  static const std::vector<std::string> names = {
      "metal_stdlib", "metal_math", "metal_atomic", "metal_compute", "metal_array", "metal_common",
      "metal_integer", "metal_relational", "metal_geometric", "metal_numeric", "metal_types",
      "metal_type_traits", "metal_limits", "metal_pack", "metal_simdgroup", "metal_simdgroup_matrix",
      "metal_matrix", "metal_texture", "metal_graphics", "metal_utility", "metal_initializer_list",
      "metal_bfloat", "metal_integer_math", "metal_logging", "metal_uniform"};
  return names;
}

std::string preprocess(const std::vector<std::string>& compiler, const std::string& work_dir,
                       const std::string& stub_include_dir, const std::vector<std::string>& include_dirs) {
  std::vector<std::string> argv = compiler;
  argv.insert(argv.end(), {"-E", "-x", "c++", "-std=gnu++17", "-nostdinc++", "-I" + stub_include_dir});
  for (const std::string& d : include_dirs) argv.push_back("-I" + d);
  argv.insert(argv.end(), metal_predefines().begin(), metal_predefines().end());
  argv.push_back(kSourceName);
  ProcessResult r = run_process(argv, work_dir);
  if (r.exit_code != 0) throw CompileError(concat("Metal preprocessing failed:\n", r.err));
  return r.out;
}

}  // namespace mps_shim::frontend
