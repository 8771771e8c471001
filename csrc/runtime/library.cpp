#include "runtime/library.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "runtime/allocator.h"
#include "runtime/checks.h"
#include "runtime/command_queue.h"
#include "runtime/crosscheck.h"
#include "runtime/error_buffer.h"
#include "util/error.h"
#include "util/json.h"

namespace mps_shim {

namespace {

std::string json_value(const std::string& s) { return json_string(s); }
std::string json_value(int v) { return std::to_string(v); }
std::string json_value(uint32_t v) { return std::to_string(v); }
std::string json_value(ParamKind k) { return json_string(kind_name(k)); }
std::string json_value(KernelExecution e) { return json_string(execution_name(e)); }

// The schema's fields of `x` as JSON members: `"key": value, ...`.
#define MPS_SHIM_JSON_FIELD(type, field, json_key) \
  out += concat(first ? "" : ", ", "\"" json_key "\": ", json_value(x.field)); \
  first = false;

std::string describe(const KernelParam& x) {
  std::string out;
  bool first = true;
  MPS_SHIM_PARAM_FIELDS(MPS_SHIM_JSON_FIELD)
  return out;
}

// One kernel: the schema's fields, its parameters, whether it is compiled and
// the names of the function constants it may read; with `values`, a
// specialisation's "constants" too.
std::string describe(const KernelInfo& x, const std::vector<FunctionConstantInfo>& constants, bool values = false) {
  std::string out = "{";
  bool first = true;
  MPS_SHIM_KERNEL_FIELDS(MPS_SHIM_JSON_FIELD)
  out += ", \"params\": [";
  for (size_t p = 0; p < x.params.size(); ++p) out += concat(p ? ", " : "", "{", describe(x.params[p]), "}");
  out += concat("], \"compiled\": ", x.compiled ? "true" : "false", ", \"function_constants\": [");
  for (size_t c = 0; c < x.function_constants.size(); ++c)
    out += concat(c ? ", " : "", json_string(constants.at(x.function_constants[c]).name));
  out += "]";
  if (values) {
    out += ", \"constants\": {";
    for (size_t c = 0; c < x.constant_values.size(); ++c)
      out += concat(c ? ", " : "", json_string(x.constant_values[c].first), ": ", json_string(x.constant_values[c].second));
    out += "}";
  }
  return out + "}";
}
#undef MPS_SHIM_JSON_FIELD

std::string describe(const FunctionConstantInfo& c) {
  return concat("{\"name\": ", json_string(c.name), ", \"type\": ", json_string(c.type), ", \"data_type\": ",
                c.data_type, ", \"size\": ", c.size, ", \"index\": ", c.index, ", \"line\": ", c.line,
                ", \"required\": ", c.required ? "true" : "false", "}");
}

std::string describe(const CompiledLibrary& library) {
  const std::vector<FunctionConstantInfo>& constants = library.function_constants();
  std::string out = "{\"kernels\": [";
  for (size_t k = 0; k < library.kernel_count(); ++k)
    out += concat(k ? ", " : "", describe(library.kernel_info(k), constants));
  out += "], \"function_constants\": [";
  for (size_t c = 0; c < constants.size(); ++c) out += concat(c ? ", " : "", describe(constants[c]));
  return out + "]}";
}

std::string param_label(const KernelParam& p) { return concat("parameter '", p.name, "' (", p.type, ")"); }

}  // namespace

std::string function_constant_key(const FunctionConstantValues& values, const std::vector<FunctionConstantInfo>& constants) {
  static const char* digits = "0123456789abcdef";
  std::string key;
  for (size_t c = 0; c < values.size(); ++c) {
    if (!values[c]) continue;
    key += concat(constants[c].index, "=");
    for (unsigned char b : *values[c]) key += {digits[b >> 4], digits[b & 15]};
    key += ";";
  }
  return key;
}

#define MPS_SHIM_NAME(NAME, value, json) \
  if (v == value) return json;
const char* kind_name(ParamKind kind) {
  const int v = int(kind);
  MPS_SHIM_PARAM_KINDS(MPS_SHIM_NAME)
  return "unknown";
}

const char* execution_name(KernelExecution execution) {
  const int v = int(execution);
  MPS_SHIM_EXECUTIONS(MPS_SHIM_NAME)
  return "unknown";
}
#undef MPS_SHIM_NAME

KernelFunction::KernelFunction(std::shared_ptr<CompiledKernel> compiled, const std::vector<FunctionConstantInfo>& constants)
    : compiled_(std::move(compiled)) {
  describe_ = describe(info(), constants, true);
  for (const KernelParam& p : info().params) {
    if (p.kind == ParamKind::Threadgroup) {
      if (size_t(p.binding) >= threadgroup_params_.size()) threadgroup_params_.resize(size_t(p.binding) + 1, nullptr);
      threadgroup_params_[size_t(p.binding)] = &p;
    }
    if (p.kind == ParamKind::ThreadAttribute || p.kind == ParamKind::Threadgroup) continue;
    if (size_t(p.binding) >= by_binding_.size()) by_binding_.resize(size_t(p.binding) + 1, nullptr);
    by_binding_[size_t(p.binding)] = &p;
  }
  bindings_.resize(by_binding_.size());
  args_.resize(by_binding_.size(), nullptr);
  host_bytes_.resize(by_binding_.size(), 0);
  threadgroup_lengths_.assign(threadgroup_params_.size(), -1);
  threadgroup_offsets_.assign(threadgroup_params_.size(), 0);
}

std::string KernelFunction::describe_bindings() const {
  std::string s;
  for (size_t i = 0; i < by_binding_.size(); ++i)
    if (by_binding_[i]) s += concat(s.empty() ? "" : ", ", i, ": ", param_label(*by_binding_[i]));
  return s.empty() ? "none" : s;
}

// Binding before start_encoding is an argument error, dispatching before it a dispatch error.
void KernelFunction::check_encoding(const char* what, ErrorKind kind) const {
  if (encoding_epoch_ != CommandQueue::epoch())
    throw Error(concat("kernel '", info().name, "': ", what,
                       " before aoti_torch_mps_start_encoding on this kernel function"), kind);
}

const KernelParam& KernelFunction::param_at(unsigned index, const char* what) const {
  check_encoding(what, ErrorKind::Argument);
  MPS_SHIM_CHECK_AS(ArgumentError, index < by_binding_.size() && by_binding_[index], "kernel '", info().name,
                 "' has no binding index ", index, " (its bindings: ", describe_bindings(), ")");
  return *by_binding_[index];
}

void KernelFunction::start_encoding() {
  encoding_epoch_ = CommandQueue::epoch();
  error_buffer_bound_ = false;
  std::fill(threadgroup_lengths_.begin(), threadgroup_lengths_.end(), -1);
  for (Binding& b : bindings_) {
    b.kind = Binding::Unbound;
    b.keep_alive.reset();
  }
}

std::string KernelFunction::binding_label(unsigned index, const KernelParam& p) const {
  return concat("kernel '", info().name, "': binding ", index, " (", param_label(p), ")");
}

// As Metal binds: a tensor to any device or constant pointer or reference
// parameter. A reference reads a whole value, so the tensor must hold one.
void KernelFunction::set_tensor(unsigned index, const Tensor& tensor) {
  const KernelParam& p = param_at(index, "set_arg_tensor");
  MPS_SHIM_CHECK_AS(ArgumentError, tensor.device() == DeviceType::MPS || backend().host_addressable(), "kernel '", info().name,
                 "': binding ", index, " needs an mps tensor, got a cpu tensor");
  if (p.reference) {
    const auto& storage = tensor.storage();
    const size_t offset = size_t(tensor.storage_offset()) * tensor.element_size();
    const size_t available = storage->nbytes > offset ? storage->nbytes - offset : 0;
    MPS_SHIM_CHECK_AS(ArgumentError, tensor.numel() > 0 && available >= p.value_size, binding_label(index, p),
                      " reads ", p.value_size, " bytes, but the tensor bound to it holds ",
                      tensor.numel() > 0 ? available : 0);
  }
  Binding& b = bindings_[index];
  b.kind = Binding::Buffer;
  b.address = tensor.data();
  b.keep_alive = tensor.storage();
}

void KernelFunction::set_threadgroup_memory_length(unsigned index, size_t nbytes) {
  check_encoding("set_threadgroup_memory_length", ErrorKind::Argument);
  MPS_SHIM_CHECK_AS(ArgumentError, index < kMaxThreadgroupIndices, "kernel '", info().name,
                    "': threadgroup memory index ", index, " is out of range (0 to ", kMaxThreadgroupIndices - 1, ")");
  MPS_SHIM_CHECK_AS(SizeError, nbytes % 16 == 0 && nbytes <= kMaxThreadgroupMemory, "kernel '", info().name,
                    "': threadgroup memory length ", nbytes, " for [[threadgroup(", index,
                    ")]] must be a multiple of 16 bytes and at most ", kMaxThreadgroupMemory);
  // As Metal: a length at an index the kernel has no parameter for is accepted
  // and unused (ggml's host code sets index 0 for every kernel).
  if (index < threadgroup_params_.size() && threadgroup_params_[index]) threadgroup_lengths_[index] = int64_t(nbytes);
}

// Lays the [[threadgroup(n)]] memory out in one block, checking Metal's rules: every length
// set, static and dynamic memory together within 32 KiB. Null when the kernel has none.
const uint32_t* KernelFunction::place_threadgroup_memory() {
  if (threadgroup_params_.empty()) return nullptr;
  uint64_t offset = 0;
  for (size_t i = 0; i < threadgroup_params_.size(); ++i) {
    const KernelParam* p = threadgroup_params_[i];
    if (!p) continue;
    MPS_SHIM_CHECK_AS(DispatchError, threadgroup_lengths_[i] >= 0, "kernel '", info().name, "': ", param_label(*p),
                      " [[threadgroup(", i, ")]] has no memory length; set one with "
                      "mps_shim_set_threadgroup_memory_length before the dispatch");
    threadgroup_offsets_[i] = uint32_t(offset);
    offset += uint64_t(threadgroup_lengths_[i]);
  }
  threadgroup_bytes_ = uint32_t(offset);
  MPS_SHIM_CHECK_AS(SizeError, offset + info().threadgroup_memory <= kMaxThreadgroupMemory, "kernel '", info().name,
                    "': ", offset, " bytes of threadgroup memory for its [[threadgroup(n)]] parameters and ",
                    info().threadgroup_memory, " of its own exceed Metal's ", kMaxThreadgroupMemory);
  return threadgroup_offsets_.data();
}

void KernelFunction::set_error_buffer(unsigned index) {
  const KernelParam& p = param_at(index, "set_arg_error_buffer");
  MPS_SHIM_CHECK_AS(ArgumentError, p.writable && !p.reference, binding_label(index, p),
                    " cannot take the error buffer: declare it `device c10::metal::ErrorMessages*`");
  Binding& b = bindings_[index];
  b.kind = Binding::Buffer;
  b.address = ErrorBuffer::instance().data();
  b.keep_alive.reset();  // the buffer lives as long as the process; the cross-check leaves it out
  error_buffer_bound_ = true;
}

// As Metal's setBytes: up to 4 KiB, copied now, to any parameter the kernel
// only reads. A reference must receive a whole value, a pointer at least one element.
void KernelFunction::set_bytes(unsigned index, const void* data, size_t nbytes) {
  const KernelParam& p = param_at(index, "set_arg");
  MPS_SHIM_CHECK_AS(ArgumentError, !p.writable, binding_label(index, p),
                    " is a buffer the kernel may write; bind a tensor with set_arg_tensor, not a value");
  MPS_SHIM_CHECK_AS(ArgumentError, data != nullptr && nbytes >= 1 && nbytes <= kMaxBytes, "kernel '", info().name,
                    "': binding ", index, " takes 1 to ", kMaxBytes, " bytes (Metal's setBytes limit) from a non-null pointer, got ",
                    nbytes);
  MPS_SHIM_CHECK_AS(ArgumentError, nbytes >= p.value_size, binding_label(index, p), " needs ", p.value_size,
                    " bytes but ", nbytes, " were bound");
  Binding& b = bindings_[index];
  if (!b.bytes) {
    b.bytes.reset(static_cast<unsigned char*>(std::aligned_alloc(64, kMaxBytes)));
    if (!b.bytes) throw OutOfMemoryError(concat("kernel '", info().name, "': no memory for bound bytes"));
  }
  std::memcpy(b.bytes.get(), data, nbytes);
  if (nbytes < 64) std::memset(b.bytes.get() + nbytes, 0, 64 - nbytes);  // a short read past them sees zeros
  b.kind = Binding::Bytes;
  b.address = b.bytes.get();
  b.nbytes = nbytes;
  b.keep_alive.reset();
}

void KernelFunction::dispatch_single(uint64_t length, std::optional<uint64_t> group_size) {
  const uint64_t group = group_size ? *group_size : std::min<uint64_t>(length, info().max_threads);
  if (!group_size && length == 0) {  // nothing to run; the default group would be 0
    check_encoding("dispatch", ErrorKind::Dispatch);
    return;
  }
  dispatch(&length, 1, &group, 1);
}

void KernelFunction::dispatch(const uint64_t* length, size_t dims, const uint64_t* group_size, size_t group_dims) {
  check_encoding("dispatch", ErrorKind::Dispatch);
  const std::string& name = info().name;
  MPS_SHIM_CHECK_AS(DispatchError, length != nullptr && dims >= 1 && dims <= 3, "kernel '", name,
                 "': a dispatch has 1 to 3 dimensions, got ", dims);
  MPS_SHIM_CHECK_AS(DispatchError, !group_size || group_dims == dims, "kernel '", name, "': the grid has ", dims,
                 " dimensions but the threadgroup size has ", group_dims);
  const uint32_t max_threads = info().max_threads;
  uint32_t grid[3] = {1, 1, 1}, group[3] = {max_threads, 1, 1};
  uint64_t group_total = 1;
  bool empty = false;
  for (size_t d = 0; d < 3; ++d) {
    if (d < dims) {
      MPS_SHIM_CHECK_AS(SizeError, length[d] <= std::numeric_limits<uint32_t>::max(), "kernel '", name, "': grid size ", length[d],
                     " in dimension ", d, " exceeds 2^32-1");
      grid[d] = uint32_t(length[d]);
      empty |= length[d] == 0;
    }
    if (group_size && d < dims) {
      MPS_SHIM_CHECK_AS(SizeError, group_size[d] >= 1, "kernel '", name, "': threadgroup size 0 in dimension ", d);
      MPS_SHIM_CHECK_AS(SizeError, group_size[d] <= max_threads, "kernel '", name, "': Threadgroup size exceeds ", max_threads,
                     " limit (asked for ", group_size[d], " threads in dimension ", d, ")");
      group[d] = uint32_t(group_size[d]);
    }
    group_total *= group[d];
  }
  MPS_SHIM_CHECK_AS(SizeError, group_total <= max_threads, "kernel '", name, "': Threadgroup size exceeds ", max_threads,
                 " limit (asked for ", group_total, " threads)");
  if (empty) return;
  MPS_SHIM_CHECK_AS(DispatchError, !CommandQueue::block_failed(), "kernel '", name,
                 "': dispatch skipped because an earlier call in this command block failed: ",
                 CommandQueue::block_error());
  launch(grid, group);
}

void KernelFunction::launch(const uint32_t grid[3], const uint32_t group[3]) {
  for (size_t i = 0; i < by_binding_.size(); ++i) {
    const KernelParam* p = by_binding_[i];
    if (!p) continue;
    const Binding& b = bindings_[i];
    MPS_SHIM_CHECK_AS(DispatchError, b.kind != Binding::Unbound, "kernel '", info().name, "': binding ", i, " (", param_label(*p),
                   ") was never set before dispatch");
    args_[i] = b.address;
    host_bytes_[i] = b.kind == Binding::Bytes;
  }
  LaunchGrid g{{grid[0], grid[1], grid[2]}, {group[0], group[1], group[2]}, place_threadgroup_memory(),
               threadgroup_bytes_, host_bytes_.data()};
  if (info().checked) {
    launch_checked(g);
    return;
  }
  if (info().execution == KernelExecution::LaneLoops && crosscheck_enabled()) {
    std::vector<CrosscheckBuffer> buffers;
    for (size_t i = 0; i < by_binding_.size(); ++i) {
      const Binding& b = bindings_[i];
      if (!by_binding_[i] || b.kind != Binding::Buffer || !b.keep_alive || !b.keep_alive->data) continue;
      auto* end = static_cast<unsigned char*>(b.keep_alive->data) + b.keep_alive->nbytes;
      buffers.push_back({unsigned(i), by_binding_[i], static_cast<unsigned char*>(b.address), end});
    }
    crosscheck_launch(*compiled_, args_.data(), g, buffers);
  } else {
    compiled_->launch(args_.data(), g);
  }
  if (error_buffer_bound_)
    if (std::optional<std::string> reported = ErrorBuffer::instance().take())
      fail<KernelReportedError>("kernel '", info().name, "' reported an error: ", *reported);
}

// A checked kernel's dispatch: each binding's extent for memcheck, a sink for
// the threads' reports, and the reports' verdict (runtime/checks.h).
void KernelFunction::launch_checked(LaunchGrid& g) {
  std::vector<uint64_t> extents(by_binding_.size(), ~uint64_t(0)), before(by_binding_.size(), 0);
  for (size_t i = 0; i < by_binding_.size(); ++i) {
    const Binding& b = bindings_[i];
    if (!by_binding_[i]) continue;
    if (b.kind == Binding::Bytes) {
      extents[i] = b.nbytes;
    } else if (b.kind == Binding::Buffer && b.keep_alive) {
      const auto* start = static_cast<const unsigned char*>(b.address);
      const auto* base = static_cast<const unsigned char*>(b.keep_alive->data);
      const auto* end = base + b.keep_alive->nbytes;
      if (!b.keep_alive->owned) {  // a blob: over aoti_torch_mps_malloc memory, the buffer is the allocation
        const Allocation a = containing_allocation(b.address);
        if (a.base) base = reinterpret_cast<const unsigned char*>(a.base), end = base + a.size;
      }
      extents[i] = end > start ? uint64_t(end - start) : 0;
      before[i] = start > base ? uint64_t(start - base) : 0;  // a view's storage before its offset
    }
  }
  std::vector<uint32_t> lengths(threadgroup_lengths_.size(), 0);
  for (size_t i = 0; i < lengths.size(); ++i)
    lengths[i] = threadgroup_lengths_[i] > 0 ? uint32_t(threadgroup_lengths_[i]) : 0;
  kernel_checks::Sink sink;
  g.extents = extents.data();
  g.extents_before = before.data();
  g.threadgroup_lengths = lengths.data();
  g.check_sink = &sink;
  std::string failure;
  try {
    compiled_->launch(args_.data(), g);
  } catch (const Error& e) {
    if (sink.empty()) throw;
    failure = e.what();
  }
  if (!sink.empty()) {
    const auto name_of = [&](int b) -> std::string {
      return b >= 0 && size_t(b) < by_binding_.size() && by_binding_[b] ? by_binding_[b]->name : std::string();
    };
    kernel_checks::conclude(info().name, sink.finish(info().name, name_of), failure);
  }
  if (error_buffer_bound_)
    if (std::optional<std::string> reported = ErrorBuffer::instance().take())
      fail<KernelReportedError>("kernel '", info().name, "' reported an error: ", *reported);
}

ShaderLibrary::ShaderLibrary(std::unique_ptr<CompiledLibrary> compiled) : compiled_(std::move(compiled)) {
  for (size_t i = 0; i < compiled_->kernel_count(); ++i) index_.emplace(compiled_->kernel_info(i).name, i);
}

// The values of `constants` in the order of the library's declarations,
// checked as Metal checks MTLFunctionConstantValues when it makes a function.
FunctionConstantValues ShaderLibrary::resolve(const KernelInfo& kernel, const std::vector<ConstantSetting>& constants) const {
  const std::vector<FunctionConstantInfo>& declared = compiled_->function_constants();
  auto listing = [&] {
    std::string s;
    for (const FunctionConstantInfo& c : declared) s += concat(s.empty() ? "" : ", ", "'", c.name, "' (", c.index, ")");
    return s.empty() ? std::string("none") : s;
  };
  FunctionConstantValues values(declared.size());
  for (const ConstantSetting& setting : constants) {
    size_t c = 0;
    while (c < declared.size() && (setting.name.empty() ? declared[c].index != setting.index : declared[c].name != setting.name))
      ++c;
    const std::string which = setting.name.empty() ? concat("index ", setting.index) : concat("'", setting.name, "'");
    MPS_SHIM_CHECK_AS(ArgumentError, c < declared.size(), "kernel '", kernel.name, "': the library declares no function "
                      "constant ", which, " (its function constants: ", listing(), ")");
    const FunctionConstantInfo& d = declared[c];
    MPS_SHIM_CHECK_AS(ArgumentError, !values[c], "kernel '", kernel.name, "': function constant '", d.name,
                      "' is given twice");
    MPS_SHIM_CHECK_AS(ArgumentError, setting.data_type == 0 || setting.data_type == d.data_type, "kernel '", kernel.name,
                      "': function constant '", d.name, "' is declared ", d.type, " (MTLDataType ", d.data_type,
                      ") but the value given has MTLDataType ", setting.data_type);
    MPS_SHIM_CHECK_AS(ArgumentError, setting.bytes.size() == d.size, "kernel '", kernel.name, "': function constant '",
                      d.name, "' (", d.type, ") takes ", d.size, " bytes, got ", setting.bytes.size());
    values[c] = setting.bytes;
  }
  for (size_t c : kernel.function_constants) {
    const FunctionConstantInfo& d = declared[c];
    MPS_SHIM_CHECK_AS(ArgumentError, values[c] || !d.required, "kernel '", kernel.name, "' reads function constant '",
                      d.name, "' (", d.type, ", index ", d.index, ", line ", d.line, "), which has no value: set it ",
                      "when getting the function (a constant is optional only where the library tests it with "
                      "is_function_constant_defined)");
  }
  return values;
}

KernelFunction& ShaderLibrary::function(const std::string& name, const std::vector<ConstantSetting>& constants) {
  auto it = index_.find(name);
  if (it == index_.end()) {
    std::string names;
    for (const auto& [n, i] : index_) names += concat(names.empty() ? "" : ", ", "'", n, "'");
    fail<KernelNotFoundError>("no kernel named '", name, "' in this library; it has ",
                              names.empty() ? "no kernels" : names);
  }
  const size_t index = it->second;
  FunctionConstantValues values;
  if (!compiled_->function_constants().empty()) {
    values = resolve(compiled_->kernel_info(index), constants);
  } else {
    MPS_SHIM_CHECK_AS(ArgumentError, constants.empty(), "kernel '", name, "': the library declares no function "
                      "constants, but ", constants.size(), " values were given");
  }
  Slot* slot;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    std::unique_ptr<Slot>& s = slots_[{index, function_constant_key(values, compiled_->function_constants())}];
    if (!s) s = std::make_unique<Slot>();
    slot = s.get();
  }
  std::lock_guard<std::mutex> lock(slot->mutex);  // one compile per function; other functions compile meanwhile
  if (!slot->function) {
    auto made = std::make_unique<KernelFunction>(compiled_->kernel(index, values), compiled_->function_constants());
    std::lock_guard<std::mutex> library_lock(mutex_);  // functions() reads slots under it
    slot->function = std::move(made);
    stale_ = true;
  }
  return *slot->function;
}

void ShaderLibrary::compile_all() {
  compiled_->compile_all();
  std::lock_guard<std::mutex> lock(mutex_);
  stale_ = true;
}

const std::string& ShaderLibrary::describe_json() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stale_) {
    describe_ = describe(*compiled_);
    stale_ = false;
  }
  return describe_;
}

std::vector<KernelFunction*> ShaderLibrary::functions() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<KernelFunction*> out;
  for (auto& [key, slot] : slots_)
    if (slot->function) out.push_back(slot->function.get());
  return out;
}

CompileOptions resolve_compile_options(const std::vector<std::string>& include_dirs, CompileMode mode) {
  std::vector<std::pair<std::string, const char*>> wanted;  // folder, where it came from
  for (const std::string& d : include_dirs) wanted.emplace_back(d, "include folder");
  // MPS_SHIM_INCLUDE_PATH applies to every library, so a folder of it that is missing is skipped.
  if (const char* env = std::getenv("MPS_SHIM_INCLUDE_PATH"); env && *env) {
    const std::string path = env;
    for (size_t pos = 0; pos <= path.size();) {
      size_t colon = path.find(':', pos);
      if (colon == std::string::npos) colon = path.size();
      if (colon > pos) wanted.emplace_back(path.substr(pos, colon - pos), "MPS_SHIM_INCLUDE_PATH folder");
      pos = colon + 1;
    }
  }
  CompileOptions out;
  for (const auto& [dir, origin] : wanted) {
    struct stat st;
    const bool is_dir = !dir.empty() && stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    if (!is_dir && origin[0] == 'M') continue;  // as compilers skip CPATH's missing folders
    MPS_SHIM_CHECK(is_dir, origin, " '", dir, "' is not a folder");
    std::string absolute = dir;
    if (dir[0] != '/') {  // the compiler runs in a folder of its own
      char cwd[PATH_MAX];
      MPS_SHIM_CHECK(getcwd(cwd, sizeof cwd) != nullptr, "cannot resolve the relative ", origin, " '", dir, "'");
      absolute = concat(cwd, "/", dir);
    }
    out.include_dirs.push_back(absolute);
  }
  out.mode = mode;
  out.checked = kernel_checks::mode() != kernel_checks::Mode::Off;
  if (const char* eager = std::getenv("MPS_SHIM_EAGER"); mode == CompileMode::Auto && eager && *eager)
    out.mode = std::string(eager) == "0" ? CompileMode::Lazy : CompileMode::Eager;
  return out;
}

}  // namespace mps_shim
