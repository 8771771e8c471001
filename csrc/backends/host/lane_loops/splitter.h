// The lane-loop splitter behind backends/host/lane_loops.h, in three parts:
// analysis.cpp reads a kernel (statements, declarations, where threads meet,
// which names differ between threads, what has side effects), lowering.cpp
// writes the group function (loops over a group's threads, per-thread arrays,
// replayed SIMD statements, masked branches), inline_calls.cpp writes lane
// versions of the library functions the kernel calls that reach a barrier,
// uniform.cpp finds the statements that compute the same on every thread.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "backends/host/lane_loops.h"
#include "frontend/statements.h"

namespace mps_shim::host::lane_loops {

// The front end's description of the source, which the lane loops lower.
using frontend::AddressSpace;
using frontend::CallKind;
using frontend::FunctionBody;
using frontend::LexedSource;
using frontend::ParamDecl;
using frontend::ParamRole;
using frontend::Stmt;
using frontend::StmtKind;
using frontend::ThreadAttr;
using frontend::Token;
using frontend::TokenKind;
using frontend::is_address_space;
using frontend::matching_bracket;
using frontend::matching_open_paren;
using frontend::parse_statements;


inline bool is_barrier_name(std::string_view s) { return s == "threadgroup_barrier" || s == "simdgroup_barrier"; }

// Thread attributes with one value for the whole threadgroup.
inline bool is_group_wide(ThreadAttr a) {
  switch (a) {
    case ThreadAttr::ThreadgroupPositionInGrid:
    case ThreadAttr::ThreadsPerGrid:
    case ThreadAttr::ThreadsPerThreadgroup:
    case ThreadAttr::ThreadgroupsPerGrid:
    case ThreadAttr::DispatchThreadsPerThreadgroup:
    case ThreadAttr::ThreadsPerSimdgroup:
    case ThreadAttr::ThreadExecutionWidth:
    case ThreadAttr::SimdgroupsPerThreadgroup:
    case ThreadAttr::DispatchSimdgroupsPerThreadgroup:
    case ThreadAttr::QuadgroupsPerThreadgroup:
    case ThreadAttr::DispatchQuadgroupsPerThreadgroup: return true;
    default: return false;
  }
}

inline bool is_assignment(std::string_view s) {
  return s == "=" || s == "+=" || s == "-=" || s == "*=" || s == "/=" || s == "%=" || s == "&=" || s == "|=" ||
         s == "^=" || s == "<<=" || s == ">>=";
}

// A declaration statement `TYPE name [= init | (args) | {args}];`, found by shape.
struct Declaration {
  size_t type_first, type_last;  // inclusive
  size_t name;                   // token index
  bool single = true;            // one declarator
};

// The function whose statements are being split: the kernel, or a function it
// calls that reaches a barrier, inlined at group level.
// Kinds of memory, as a mask: threadgroup memory and device/constant memory
// never alias, so reads of one give every thread the same values while its
// threads write only the other.
inline constexpr int kGroupMemory = 1, kDeviceMemory = 2, kAnyMemory = 3;

struct Frame {
  const std::vector<ParamDecl>* thread_params = nullptr;  // the kernel's; none in a callee
  size_t lane_vars_begin = 0;    // per-thread arrays of enclosing frames are not visible
  std::set<std::string> varying;     // names whose value differs between threads
  std::set<std::string> body_types;  // names the body declares (not usable as array types)
  bool callee = false;
  std::string result;                // a callee's per-thread results (non-void callees)
  size_t body_open = 0, body_close = 0;  // the function's braces
  std::set<std::string> params;          // its parameters' names
  std::map<std::string, int> declared;   // how often the body declares each name, at any depth
  std::set<std::string> group_vars;      // variables of group-uniform statements: one value per group
  std::map<std::string, int> memory;     // the memory (kGroupMemory, kDeviceMemory) a name points into
  // Lambdas that call SIMD-group functions, by the name they are called through
  // here: the tokens `[captures](params) { body }` (hoist_simd_calls inlines them).
  std::map<std::string, std::pair<size_t, size_t>> lambdas;
  // A callee's `return` token when its body ends with it: the function ends
  // there for every thread, so the thread need not be held out.
  size_t final_return = size_t(-1);
};

class Splitter {
 public:
  explicit Splitter(const LaneLoopRequest& r) : r_(r), t_(r.source.tokens) {
    for (const FunctionBody& b : r.bodies) library_functions_.insert(b.name);
  }

  LaneLoopResult run();

 private:
  LaneLoopResult no(const std::string& why) { return LaneLoopResult{std::nullopt, why, {}}; }
  bool fail(const std::string& why);
  bool at(size_t i, std::string_view s) const { return i < t_.size() && t_[i].is(s); }

  // Constructs the splitter cannot reason about; where threads meet.
  bool scan_tokens(size_t open, size_t close);

  // Holds a barrier or a SIMD-group function: the threads must meet there.
  bool has_sync(size_t first, size_t last) const;
  bool has_sync(const Stmt& s) const { return has_sync(s.first, s.last); }
  // "'atomic_load_explicit' (which polls an atomic or reaches a barrier)" for the first meeting point of a head.
  std::string first_sync(const Stmt& s) const;
  bool mentions_barrier(size_t first, size_t last) const;

  // `[::][metal::]threadgroup_barrier(...);`
  bool is_barrier_statement(const Stmt& s) const;

  std::optional<Declaration> declaration(const Stmt& s) const;

  // Names, `::`, template brackets and arguments, `*` and `&`: `x += y * z` is no declaration.
  bool type_shaped(size_t first, size_t last) const;

  bool is_threadgroup_declaration(const Declaration& d) const;

  bool has_token(const Declaration& d, std::string_view s) const;

  // Every name a statement of the body declares, at any depth: a thread's own
  // values (threadgroup arrays and compile-time constants excepted).
  void collect_declared(const Stmt& s);

  // `const T n = expr;` whose value is the same for every thread (the group
  // computes it once, so it can size a threadgroup array).
  bool group_constant(const Declaration& d, const Stmt& s) const;

  // Pointers into a thread's own locals (`&x`, a local array) would dangle in
  // a per-thread array once the loop that owns the local ends.
  bool may_point_into_locals() const;

  // Every name a statement declares, at any depth (for-loop variables included).
  void collect_names(const Stmt& s, std::set<std::string>& names) const;

  bool uses_varying(size_t first, size_t last) const;

  // A threadgroup array is a plain local of the group function; `return;` ends a thread.
  // In the kernel `return;` ends the thread (the lane lambda returns true); in
  // an inlined function `return v;` stores v and holds the thread out until
  // the function's end.
  std::string render(size_t first, size_t last, const std::map<size_t, size_t>& returns = {}) const;

  std::string line_marker(size_t tok) const { return line_directive(r_.source, tok, true); }

  // The type of a callee's per-thread result (for `return {a, b};`).
  std::string result_type() const { return "std::decay_t<decltype(" + frame_->result + "[0])>"; }

  static std::string declare_thread_value(const ParamDecl& p, const std::string& ids);

  struct LaneVar {
    std::string name, array;
  };
  // The innermost per-thread variable of that name in scope, if any (those of
  // the lane loop being written included).
  const LaneVar* lane_var(std::string_view name) const;
  const std::vector<LaneVar>* region_vars_ = nullptr;

  // Statements of one block in which barriers sit.
  enum class Role {
    Lanes,      // runs in a loop over the threads with its neighbours
    Shared,     // a threadgroup array or constexpr: declared once for the group
    LaneValue,  // an auto variable used past the next meeting point: its own loop collects it
    Sync,       // a barrier, a SIMD-group statement, or control flow holding one
  };

  bool is_auto(const Declaration& d) const { return has_token(d, "auto"); }
  // `[const] auto x = expr;` that may share its loop with its neighbours: its
  // per-thread array's type is read from an uncalled lambda (lane_loop).
  bool plain_auto(const Declaration& d) const;

  // Roles of a block's statements; an auto variable needs its own loop only
  // when it is used past the end of the loop it would otherwise share.
  std::vector<Role> roles(const std::vector<Stmt>& stmts) const;

  bool block(const std::vector<Stmt>& stmts);

  // `threadgroup T x[N];` after statements of a lane-loop region that do not
  // name x: declared ahead of the region's loop, so the loop need not split.
  bool movable_group_declaration(const Stmt& s, const std::vector<const Stmt*>& before) const;

  // No assignment, increment or atomic: safe to evaluate once per SIMD operation.
  // Nor a call to a library function that writes memory or touches an atomic.
  bool side_effect_free(size_t first, size_t last) const;

  // A library function of this name (every overload) writes no memory beyond
  // its own locals: no atomics, no store through `[`, `*` or `->`, no
  // non-const reference parameter, and calls only such functions.
  bool pure_function(std::string_view name) const;

  bool mentions(size_t first, size_t last, std::string_view name) const;

  // A statement with SIMD-group functions: `[type] x = expr;` or `lvalue = expr;`,
  // replayed once per SIMD operation (see LaneExchange in mps_host_metal.h).
  bool simd_statement(const Stmt& s);

  // Where every SIMD-group function of the expression [first, last] is one of
  // Metal's that mps_host::lanes computes for the whole group, called
  // unconditionally: emits per call the collection of its arguments and the
  // group-level call, and makes render() read the call's result per thread
  // (hoisted_). The statement then runs as one plain loop, not replayed.
  bool hoist_simd_calls(size_t first, size_t last);
  // Replaying would match a SIMD call some threads skip (under `?:`, `&&` or
  // `||`) with a later call of others: such statements need fibers.
  bool shifted_simd_calls(size_t first, size_t last) const;
  // A call hoist_simd_calls can handle: one of Metal's SIMD functions, or a
  // lambda of the frame whose body is `{ return expr; }` with such calls.
  struct HoistedCall {
    size_t name, start, close;  // start: the first token of `[::][metal::]name`
    bool lambda;
  };
  bool hoistable_calls(size_t first, size_t last, std::vector<HoistedCall>& calls, int depth) const;
  // The lambda's parameters (type and name tokens) and the expression it returns.
  struct LambdaShape {
    std::vector<std::pair<std::vector<size_t>, size_t>> params;
    size_t expr_first, expr_last;
  };
  std::optional<LambdaShape> lambda_shape(size_t first, size_t last) const;
  // Emits one hoisted call (its arguments' collections, the group-level call)
  // and returns what replaces it in the statement.
  std::string hoist_call(const HoistedCall& c);

  // Splits [first, last] at commas outside brackets (angle brackets too when `angles`).
  std::vector<std::pair<size_t, size_t>> split_commas(size_t first, size_t last, bool angles) const;

  std::string tokens_text(const std::vector<size_t>& toks) const;

  // A library function that reaches a barrier, called as `[type] x = f(args);`
  // or `f(args);`: its body is split in place with a frame of its own. An
  // argument that is the same for every thread binds once for the group; the
  // others bind per thread. Template parameters are deduced from parameters
  // declared as exactly `T name`.
  bool inline_call(const Stmt& s, size_t w);

  // inline_call for a call of a library function that reaches SIMD-group
  // functions (no barrier): an optimisation, so a call it cannot inline is
  // left as it was (the statement is replayed) rather than failing the kernel.
  bool try_inline_simd_call(const Stmt& s);

  // A library function's definition as inline_call reads it.
  struct FunctionParam {
    std::vector<size_t> type;  // by value: `&` dropped
    std::string name;
  };
  struct Definition {
    const FunctionBody* body;
    size_t template_first = 0, template_close = 0;  // `template <...>` (template_close 0: none)
    std::vector<std::string> tparams;               // type template parameters, in order
    std::vector<size_t> ret;
    bool is_void = false;
    size_t lp = 0, rp = 0;  // its parameter list's parentheses
    std::vector<FunctionParam> params;
    std::vector<Stmt> statements;
    std::string ns;  // `::a::b::`
  };
  // Reads one definition; `overloaded`: one of several, chosen by the compiler
  // (non-type template parameters with defaults are then allowed: SFINAE).
  std::optional<Definition> read_definition(const FunctionBody& b, const std::string& cannot, bool overloaded);
  // Writes the lane version `fn` of a definition, inserted after it. `choice`:
  // the template parameters come from a mps_host::lanes::Choice (overloads),
  // else they are deduced from the arguments as declared.
  bool write_lane_version(const Definition& d, const std::string& fn, const std::vector<bool>& uniform,
                          const std::vector<std::string>& explicit_args,
                          const std::map<std::string, std::pair<size_t, size_t>>& lambdas, bool choice);

  // `::a::b::` for a token inside namespaces only; nullopt inside a class,
  // function or anonymous namespace.
  std::optional<std::string> namespace_path(size_t tok) const;

  // `[type|auto] x = expr;` as an array of per-thread values filled by its own loop.
  bool lane_value(const Stmt& s, const Declaration& d, bool replay);

  // `prefix[&](lane, ids) -> ret {` with the thread's own values and the
  // per-thread variables in scope declared.
  std::string lane_lambda_open(const std::string& prefix, const std::string& ret) const;

  // A statement that holds a barrier: run once for the group.
  bool group_statement(const Stmt& s);

  // A loop around barriers runs once for the group: the same trip count for every thread.
  bool group_wide_loop_head(const Stmt& s);

  bool loop_body(const Stmt& s, const std::string& open, const std::string& close);

  // `if (cond)` where cond differs between threads: each branch runs with the
  // threads whose condition does not select it held out (LaneMask).
  bool masked_if(const Stmt& s);

  // True when a statement assigns `name` or takes its address.
  bool modified_in(std::string_view name, const Stmt& s) const;

  // Referenced by a statement of the block after `from`?
  bool used_after(std::string_view name, const std::vector<Stmt>& stmts, size_t from) const;

  bool add_return(size_t k, std::map<size_t, size_t>& returns);

  // `break`/`continue` that would leave the thread's loop, `return;` that ends
  // the thread, threadgroup declarations hidden inside a conditional.
  bool check_region_statement(const Stmt& s, bool in_loop, std::map<size_t, size_t>& returns);

  // One loop over the group's threads running `region`; its declarations used
  // after it become per-thread arrays.
  bool lane_loop(const std::vector<const Stmt*>& region, const std::vector<Stmt>& block, size_t after,
                 std::string& arrays);

  // The element type of a per-thread array: the declared type, top-level const dropped.
  bool lane_var_type(const Declaration& d, std::string& type);

  // Group-uniform statements (uniform.cpp): statements of a lane-loop region
  // that compute the same values on every thread run once for the group.

  // Fills the frame's `params`, `declared`, braces.
  void describe_frame(Frame& f, size_t open, size_t close, const std::vector<Stmt>& body) const;
  void count_declared(const Stmt& s, std::map<std::string, int>& counts) const;

  // Which statements of `region` (a lane-loop region, or one statement) run
  // once for the group: true at their indices.
  std::vector<bool> uniform_statements(const std::vector<const Stmt*>& region) const;

  // Writes the uniform statements of a region at group level, guarded by
  // `any_running`; their variables become group-level and stop varying.
  void emit_uniform(const std::vector<const Stmt*>& uniform);

  // A declaration whose variable can be a group-level local declared apart
  // from its initialisation: `type` is what to declare it as.
  bool group_var_type(const Declaration& d, size_t name, size_t end, std::string& type) const;

  // Every use of `name` outside the `inside` token ranges of the frame only
  // reads it (no assignment, address, reference binding, or argument to a
  // function that may write it), and none comes before `declared_at`.
  bool only_read_outside(const std::string& name, const std::vector<std::pair<size_t, size_t>>& inside,
                         size_t declared_at) const;

  // The statement's tokens compute values from group-uniform inputs only and
  // write nothing but variables declared in `own`; they read no memory of the
  // kinds in `written` (what the region's threads write).
  bool uniform_tokens(size_t first, size_t last, const std::set<std::string>& own, int written) const;

  // The kinds of memory a region's statements may write (stores, atomics,
  // calls of functions that may write): kAnyMemory where unsure.
  int memory_written(const std::vector<const Stmt*>& region) const;

  // The memory a name points into: kAnyMemory where unknown.
  int memory_of(std::string_view name) const;

  // Every name declared in `s` at any depth, each declarator and for-loop
  // variable; `refs`: set when one of them is a reference.
  void declared_names(const Stmt& s, std::vector<std::pair<std::string, size_t>>& names, bool& refs) const;

  const LaneLoopRequest& r_;
  const std::vector<Token>& t_;
  std::set<size_t> barriers_;              // barrier call tokens
  std::set<size_t> syncs_;                 // barrier and SIMD-group call tokens
  Frame* frame_ = nullptr;
  std::set<size_t> waits_;                 // calls of library functions that reach a barrier
  std::vector<std::pair<size_t, std::string>> insertions_;  // lane versions of inlined functions
  std::set<size_t> shared_;                // declarations the group makes once (first token)
  mutable std::map<std::string, bool> purity_;  // pure_function, by name
  std::set<std::string> waiting_lambdas_;  // group-level lambdas that call SIMD functions
  std::set<std::string_view> library_functions_;  // the names the library defines functions of
  std::map<size_t, std::string> hoisted_;  // token rewrites of the statement being written (hoist_simd_calls)
  bool local_arrays_ = false;              // the kernel declares a per-thread array
  bool points_into_locals_ = false;
  int inline_depth_ = 0;
  std::vector<LaneVar> lane_vars_;         // per-thread arrays in scope, outermost first
  size_t next_array_ = 0;
  std::string out_;
  std::string why_;
};

}  // namespace mps_shim::host::lane_loops
