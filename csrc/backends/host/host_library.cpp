#include "backends/host/host_library.h"

#include <algorithm>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "backends/common/front_end_info.h"
#include "backends/host/cxx_emitter.h"
#include "backends/host/executor.h"
#include "backends/host/host_module.h"
#include "backends/host/kernel_cache.h"
#include "backends/host/module_builder.h"
#include "frontend/function_constants.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/sha256.h"

namespace mps_shim::host {

namespace {

// compile_all gives each worker thread a module of its own when the library
// has at least this many kernels per thread.
constexpr size_t kMinKernelsPerModule = 16;

// A module file name part from a kernel's host name.
std::string file_part(const std::string& name) {
  std::string out = name;
  for (char& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') c = '_';
  return out;
}

// Loads a module written by KernelCache::store; a private copy (the cache is
// off or was not writable) is removed once loaded: modules stay mapped.
std::shared_ptr<HostModule> load_stored(const std::string& path) {
  KernelCache& cache = KernelCache::instance();
  std::shared_ptr<HostModule> module = load_module(path);
  if (cache.dir().empty() || path.rfind(cache.dir(), 0) != 0) remove_tree(path.substr(0, path.rfind('/')));
  return module;
}

// The module cached under `key`, else the one `build()` returns, stored first.
template <typename Build>
std::shared_ptr<HostModule> cached_module(const std::string& key, Build build) {
  KernelCache& cache = KernelCache::instance();
  std::string path = cache.lookup(key);
  if (path.empty()) path = cache.store(key, build());
  return load_stored(path);
}

class HostShaderLibrary : public CompiledLibrary {
 public:
  // What names this library's modules.
  struct Identity {
    std::string key_text;     // what cache keys hash: the source, or with include folders its preprocessed text
    std::string variant;      // what else changes the modules (lane loops off; keyed on preprocessed text)
    std::string keep_prefix;  // MPS_SHIM_KEEP_CXX file names: the source's hash
    bool lane_loops = true;
    bool checked = false;     // checked mode (runtime/checks.h): sanitizers compiled in
  };

  // A library read by the front end; nothing compiled yet.
  HostShaderLibrary(Identity id, std::shared_ptr<const ParsedSource> src) : id_(std::move(id)), src_(std::move(src)) {
    for (const frontend::KernelDecl& k : src_->parsed.kernels) infos_.push_back(lowering::front_end_info(k));
    for (const frontend::FunctionConstant& c : src_->parsed.function_constants) constants_.push_back(lowering::constant_info(c));
    compiled_.resize(infos_.size());
  }

  // A library whose whole module was in the cache, loaded without the front
  // end: its source declares no function constants, and every kernel is compiled.
  HostShaderLibrary(Identity id, std::shared_ptr<HostModule> whole) : id_(std::move(id)) {
    infos_.resize(whole->kernels().size());
    compiled_.resize(infos_.size());
    adopt(whole, all_kernels());
    whole_checked_ = whole_compiled_ = true;
  }

  size_t kernel_count() const override { return infos_.size(); }

  KernelInfo kernel_info(size_t index) const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return infos_.at(index);
  }

  const std::vector<FunctionConstantInfo>& function_constants() const override { return constants_; }

  std::shared_ptr<CompiledKernel> kernel(size_t index, const FunctionConstantValues& values) override {
    const std::string key = function_constant_key(values, constants_);
    if (std::shared_ptr<CompiledKernel> k = find(index, key)) return k;
    if (key.empty() && load_whole_library()) return find(index, key);
    std::shared_ptr<CompiledKernel> made = compile_kernel(index, values, key);
    std::lock_guard<std::mutex> lock(mutex_);  // a racing request may have made it first: keep one
    auto [it, inserted] = compiled_[index].emplace(key, made);
    if (key.empty()) infos_[index] = it->second->info();
    return it->second;
  }

  void compile_all() override {
    std::vector<size_t> todo;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t i = 0; i < compiled_.size(); ++i)
        if (!compiled_[i].count("")) todo.push_back(i);
    }
    if (todo.empty() && !infos_.empty()) return;
    if (load_whole_library()) return;  // compiled whole already, or found in the cache
    const std::shared_ptr<const ParsedSource> src = source();
    const size_t threads = std::max<size_t>(1, Executor::instance().threads());
    const size_t modules = std::min(threads, std::max<size_t>(1, todo.size() / kMinKernelsPerModule));
    if (modules == 1 && todo.size() == infos_.size()) {  // the library as one module, as it always compiled
      LoweringOptions options = lowering_options();
      adopt(cached_module(KernelCache::instance().key(id_.key_text, id_.variant),
                          [&] { return build_module(*src, options, id_.keep_prefix); }),
            todo);
      {
        std::lock_guard<std::mutex> lock(whole_mutex_);
        whole_checked_ = whole_compiled_ = true;
      }
      // Every kernel is compiled and there are no specialisations to make: the
      // front end's reading is not needed again (a model holds many libraries).
      if (constants_.empty()) {
        std::lock_guard<std::mutex> lock(mutex_);
        src_.reset();
      }
      return;
    }
    // One module per thread, built side by side: each compiler run reads the
    // whole library but generates code for its share of the kernels only.
    std::vector<std::vector<size_t>> parts(modules);
    for (size_t i = 0; i < todo.size(); ++i) parts[i * modules / todo.size()].push_back(todo[i]);
    std::vector<std::exception_ptr> errors(modules);
    std::vector<std::thread> workers;
    for (size_t m = 0; m < modules; ++m)
      workers.emplace_back([&, m] {
        try {
          compile_part(*src, parts[m], concat(id_.keep_prefix, ".part", m + 1, "of", modules));
        } catch (...) {
          errors[m] = std::current_exception();
        }
      });
    for (std::thread& w : workers) w.join();
    for (const std::exception_ptr& e : errors)
      if (e) std::rethrow_exception(e);
  }

 private:
  std::vector<size_t> all_kernels() const {
    std::vector<size_t> all(infos_.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    return all;
  }

  std::shared_ptr<CompiledKernel> find(size_t index, const std::string& key) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = compiled_.at(index).find(key);
    return it == compiled_[index].end() ? nullptr : it->second;
  }

  LoweringOptions lowering_options() const {
    LoweringOptions options;
    options.lane_loops = id_.lane_loops;
    options.checked = id_.checked;
    return options;
  }

  std::shared_ptr<const ParsedSource> source() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return src_;
  }

  // The module's record of kernel `index`, with what the front end (`src`, if any) knows.
  KernelInfo compiled_info(const ParsedSource* src, const HostModule& module, size_t entry, size_t index,
                           const FunctionConstantValues& values) const {
    KernelInfo info = module.kernels().at(entry);
    info.checked = id_.checked;
    if (!src) return info;
    info.function_constants = src->parsed.kernels[index].function_constants;
    info.constant_values = lowering::constant_values(src->parsed, values);
    return info;
  }

  // The default specialisations of `indices` from `module`, whose table holds them in that order.
  void adopt(const std::shared_ptr<HostModule>& module, const std::vector<size_t>& indices) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t entry = 0; entry < indices.size(); ++entry) {
      const size_t index = indices[entry];
      KernelInfo info = compiled_info(src_.get(), *module, entry, index, {});
      infos_[index] = info;
      compiled_[index].emplace("", module_kernel(module, entry, std::move(info)));
    }
  }

  // The library's whole module, if a compile_all left it in the cache: it
  // serves every kernel's default specialisation. Looked for once.
  bool load_whole_library() {
    std::lock_guard<std::mutex> lock(whole_mutex_);
    if (whole_checked_) return whole_compiled_;
    whole_checked_ = true;
    const std::string path = KernelCache::instance().lookup(KernelCache::instance().key(id_.key_text, id_.variant));
    if (path.empty()) return false;
    adopt(load_stored(path), all_kernels());
    return whole_compiled_ = true;
  }

  std::shared_ptr<CompiledKernel> compile_kernel(size_t index, const FunctionConstantValues& values,
                                                 const std::string& values_key) {
    const std::shared_ptr<const ParsedSource> src = source();
    MPS_SHIM_CHECK_AS(EngineError, src != nullptr, "kernel '", kernel_info(index).name, "' has no module");
    const std::string& name = src->parsed.kernels[index].host_name;
    LoweringOptions options = lowering_options();
    options.all_kernels = false;
    options.kernels = {index};
    options.constants = values;
    std::string keep = concat(id_.keep_prefix, ".", file_part(name));
    if (!values_key.empty()) keep += "." + sha256_hex(values_key.data(), values_key.size()).substr(0, 8);
    const std::shared_ptr<HostModule> module =
        cached_module(KernelCache::instance().key(id_.key_text, concat(id_.variant, "|kernel=", name, "|", values_key)),
                      [&] { return build_module(*src, options, keep); });
    return module_kernel(module, 0, compiled_info(src.get(), *module, 0, index, values));
  }

  void compile_part(const ParsedSource& src, const std::vector<size_t>& indices, const std::string& keep) {
    std::string names;
    for (size_t i : indices) names += src.parsed.kernels[i].host_name + ",";
    LoweringOptions options = lowering_options();
    options.all_kernels = false;
    options.kernels = indices;
    adopt(cached_module(KernelCache::instance().key(id_.key_text, concat(id_.variant, "|kernels=", names)),
                        [&] { return build_module(src, options, keep); }),
          indices);
  }

  const Identity id_;
  std::vector<FunctionConstantInfo> constants_;
  mutable std::mutex mutex_;  // guards src_, infos_ and compiled_
  // The front end's reading: null when loaded without the front end, or once
  // every kernel is compiled and the library has no function constants.
  std::shared_ptr<const ParsedSource> src_;
  std::vector<KernelInfo> infos_;
  std::vector<std::map<std::string, std::shared_ptr<CompiledKernel>>> compiled_;  // per kernel, by values key
  std::mutex whole_mutex_;  // guards the two flags
  bool whole_checked_ = false, whole_compiled_ = false;
};

}  // namespace

std::unique_ptr<CompiledLibrary> open_host_library(const std::string& source, const CompileOptions& options) {
  KernelCache& cache = KernelCache::instance();
  HostShaderLibrary::Identity id;
  if (const char* env = std::getenv("MPS_SHIM_LANE_LOOPS"); env && std::string(env) == "0") id.lane_loops = false;
  id.checked = options.checked;
  // Checked kernels are modules of their own: every kernel on fibers, with the sanitizers.
  const std::string variant = std::string(id.lane_loops ? "" : "lane_loops=0") + (id.checked ? "|checked" : "");
  id.keep_prefix = sha256_hex(source.data(), source.size()).substr(0, 16);
  // Included files are part of the library: with include folders the key
  // is the preprocessed text, so an edited header compiles anew.
  std::string preprocessed;
  if (!options.include_dirs.empty()) {
    preprocessed = preprocess_source(source, options.include_dirs);
    id.key_text = preprocessed;
    id.variant = variant + "|preprocessed";
  } else {
    id.key_text = source;
    id.variant = variant;
  }
  // A library compiled whole before loads from the cache without the front
  // end (a read, a hash and a dlopen), unless it declares function constants.
  if (options.mode != CompileMode::Lazy && id.key_text.find("function_constant") == std::string::npos) {
    const std::string path = cache.lookup(cache.key(id.key_text, id.variant));
    if (!path.empty()) return std::make_unique<HostShaderLibrary>(std::move(id), load_stored(path));
  }
  if (preprocessed.empty()) preprocessed = preprocess_source(source, {});
  auto src = std::make_shared<const ParsedSource>(std::move(preprocessed));
  const bool eager = options.mode == CompileMode::Eager ||
                     (options.mode == CompileMode::Auto && src->parsed.kernels.size() <= kMaxEagerKernels);
  auto library = std::make_unique<HostShaderLibrary>(std::move(id), src);
  if (eager) library->compile_all();
  else start_precompiled_header(cache.include_dir());  // compiles will follow
  return library;
}

}  // namespace mps_shim::host
