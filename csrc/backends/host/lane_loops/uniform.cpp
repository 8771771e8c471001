// Group-uniform statements: a statement of a lane-loop region whose every read
// is the same for all threads of the group (threadgroup memory nobody in the
// region writes, group-wide parameters and attributes, literals, variables
// that are themselves group-uniform) and that writes nothing but its own
// variables computes the same values on every thread. It runs once for the
// group, before the region's loop, if any thread runs there, and its
// variables become group-level locals (one value, not one per thread). Typical: c10's
// threadgroup_welford_reduce, where every thread walks the whole group's data.
//
// The analysis is syntactic and conservative: anything it cannot see through
// (lambdas, references, address-of, calls through locals, functions that may
// write, names declared twice in the function) keeps per-thread execution.
#include "backends/host/lane_loops/splitter.h"

namespace mps_shim::host::lane_loops {

namespace {

// Ends an operand, so that a following `*`, `&` or `[` is binary or an index.
bool operand_end(const Token& tk) {
  static const std::set<std::string_view> keywords = {"return", "case", "else", "do", "sizeof", "new",
                                                      "delete", "throw", "co_return", "co_await"};
  if (tk.is_identifier()) return !keywords.count(tk.text);
  return tk.kind == TokenKind::Number || tk.kind == TokenKind::String || tk.kind == TokenKind::Char || tk.is(")") ||
         tk.is("]");
}

// `=` of a declarator's initialiser (`float x = …`, `T* p = …`), not an assignment.
bool initialiser(const std::vector<Token>& t, size_t k) {
  if (k < 3 || !t[k].is("=") || !t[k - 1].is_identifier()) return false;
  const Token& before = t[k - 2];
  if ((before.is_identifier() && operand_end(before)) || before.is(">")) return true;
  return (before.is("*") || before.is("&")) && (t[k - 3].is_identifier() || t[k - 3].is(">") || t[k - 3].is("*"));
}

// Comes right before an assignment's target: scanning back from the operator
// stops here. A `)` ends a control head (`for (…) x += y`); a target that holds
// one (`(p)[0] = …`, `f(x).y = …`) then no longer starts with a name, and is
// refused as a store through something unknown.
bool target_start(const Token& tk) {
  return tk.is(";") || tk.is("{") || tk.is("}") || tk.is(",") || tk.is("(") || tk.is(")") || tk.is("?") ||
         tk.is(":") || tk.is("else") || tk.is("do") || is_assignment(tk.text);
}

// Metal functions that write through a reference or pointer argument.
bool writes_argument(std::string_view name) { return name == "frexp" || name == "modf" || name == "sincos"; }

}  // namespace

void Splitter::declared_names(const Stmt& s, std::vector<std::pair<std::string, size_t>>& names, bool& refs) const {
  auto visit = [&](const Stmt& st) {
    const auto d = declaration(st);
    if (!d) return;
    if (has_token(*d, "&") || has_token(*d, "&&")) refs = true;
    for (auto [a, b] : split_commas(d->name, st.last - 1, false)) {
      size_t k = a;  // `*q` in `float *p, *q;`
      while (k <= b && !t_[k].is_identifier()) {
        if (t_[k].is("&") || t_[k].is("&&")) refs = true;
        ++k;
      }
      if (k <= b) names.push_back({std::string(t_[k].text), k});
    }
  };
  visit(s);
  if (s.kind == StmtKind::For) {
    Stmt init;
    init.first = s.head_open + 1;
    init.last = s.semi1;
    visit(init);
  }
  for (const Stmt& c : s.children) declared_names(c, names, refs);
}

void Splitter::count_declared(const Stmt& s, std::map<std::string, int>& counts) const {
  std::vector<std::pair<std::string, size_t>> names;
  bool refs = false;
  declared_names(s, names, refs);
  for (const auto& n : names) ++counts[n.first];
}

void Splitter::describe_frame(Frame& f, size_t open, size_t close, const std::vector<Stmt>& body) const {
  f.body_open = open;
  f.body_close = close;
  for (const Stmt& s : body) count_declared(s, f.declared);
  std::function<void(const Stmt&)> threadgroup = [&](const Stmt& s) {
    if (auto d = declaration(s); d && is_threadgroup_declaration(*d))
      for (auto [a, b] : split_commas(d->name, s.last - 1, false))
        if (t_[a].is_identifier()) f.memory[std::string(t_[a].text)] = kGroupMemory;
    for (const Stmt& c : s.children) threadgroup(c);
  };
  for (const Stmt& s : body) threadgroup(s);
  for (auto& [name, kind] : f.memory)  // a name declared twice may be either
    if (f.declared[name] > 1 || f.params.count(name)) kind = kAnyMemory;
}

int Splitter::memory_of(std::string_view name) const {
  auto it = frame_->memory.find(std::string(name));
  return it == frame_->memory.end() ? kAnyMemory : it->second;
}

int Splitter::memory_written(const std::vector<const Stmt*>& region) const {
  std::set<std::string> locals;  // a thread's own variables: per-thread ones, and those the region declares
  for (const Stmt* s : region) {
    std::vector<std::pair<std::string, size_t>> names;
    bool refs = false;
    declared_names(*s, names, refs);
    if (refs) return kAnyMemory;  // a reference may alias memory
    for (const auto& n : names) locals.insert(n.first);
  }
  auto local = [&](std::string_view name) {
    const std::string key(name);
    return (frame_->varying.count(key) || locals.count(key)) && !frame_->group_vars.count(key) &&
           !frame_->memory.count(key);
  };
  int written = 0;
  for (const Stmt* s : region) {
    for (size_t k = s->first; k <= s->last; ++k) {
      const Token& tk = t_[k];
      if (tk.is_identifier()) {
        if (tk.text.rfind("atomic_", 0) == 0 || writes_argument(tk.text)) return kAnyMemory;
        if (at(k + 1, "(") && !(t_[k - 1].is(".") || t_[k - 1].is("->")) &&
            (frame_->declared.count(std::string(tk.text)) || frame_->params.count(std::string(tk.text))))
          return kAnyMemory;  // a call through a local or parameter (a lambda may write anything)
        if (at(k + 1, "(") && !pure_function(tk.text)) return kAnyMemory;
        continue;
      }
      if (tk.is("[") && !operand_end(t_[k - 1])) return kAnyMemory;  // a lambda
      if (tk.is("++") || tk.is("--")) {
        const bool postfix = operand_end(t_[k - 1]);
        const size_t target = postfix ? k - 1 : k + 1;
        if (!t_[target].is_identifier() || (postfix && (t_[k - 2].is(".") || t_[k - 2].is("->"))))
          return kAnyMemory;
        const bool indexed = !postfix && (at(k + 2, "[") || at(k + 2, ".") || at(k + 2, "->"));
        if (indexed || !local(t_[target].text)) written |= memory_of(t_[target].text);
        continue;
      }
      if (!is_assignment(tk.text) || initialiser(t_, k)) continue;
      size_t j = k;  // the target, back to the expression's start
      while (j > s->first && !target_start(t_[j - 1])) --j;
      if (j == k || !t_[j].is_identifier() || t_[j - 1].is("::") || (j + 1 < k && t_[j + 1].is("::")))
        return kAnyMemory;
      bool through = false;  // stores through an index, pointer or call
      for (size_t x = j; x < k; ++x)
        through = through || t_[x].is("[") || t_[x].is("*") || t_[x].is("->") || t_[x].is("(");
      if (through || !local(t_[j].text)) written |= memory_of(t_[j].text);
    }
  }
  return written;
}

bool Splitter::uniform_tokens(size_t first, size_t last, const std::set<std::string>& own, int written) const {
  static const std::set<std::string_view> refused = {"return", "goto", "static", "thread_local", "threadgroup",
                                                     "asm", "__asm__", "this"};
  auto callable = [&](size_t k) {  // a call of the function named by token k is allowed
    const std::string name(t_[k].text);
    if (writes_argument(name) || name.rfind("atomic_", 0) == 0 || !pure_function(name)) return false;
    bool library = false;
    for (const FunctionBody& b : r_.bodies) library = library || b.name == name;
    return written == 0 || !library;  // a library function may read any memory
  };
  auto reads = [&](size_t base) {  // memory read through the name at `base` (an index or `*p`)
    if (!t_[base].is_identifier() || t_[base - 1].is(".") || t_[base - 1].is("->") || t_[base - 1].is("::"))
      return kAnyMemory;
    const std::string name(t_[base].text);
    if (own.count(name) || frame_->group_vars.count(name)) return 0;  // a vector or local array of its own
    return memory_of(name);
  };
  for (size_t k = first; k <= last; ++k) {
    const Token& tk = t_[k];
    if (refused.count(tk.text)) return false;
    if (tk.is("[") && !operand_end(t_[k - 1])) return false;  // a lambda or attribute
    if (tk.is("[") && (reads(k - 1) & written)) return false;  // an index into memory its region writes
    if (tk.is("&") && !operand_end(t_[k - 1])) return false;  // an address
    if (tk.is("*") && !operand_end(t_[k - 1]) && (reads(k + 1) & written)) return false;
    if (tk.is("->") && written) return false;
    if (tk.is("++") || tk.is("--")) {
      const bool postfix = operand_end(t_[k - 1]);
      const size_t target = postfix ? k - 1 : k + 1;
      if (!t_[target].is_identifier() || !own.count(std::string(t_[target].text)) ||
          (postfix && (t_[k - 2].is(".") || t_[k - 2].is("->") || t_[k - 2].is("::"))) ||
          (!postfix && (at(k + 2, "[") || at(k + 2, ".") || at(k + 2, "->") || at(k + 2, "::"))))
        return false;
      continue;
    }
    if (initialiser(t_, k)) {
      if (!own.count(std::string(t_[k - 1].text))) return false;
      continue;
    }
    if (is_assignment(tk.text)) {
      size_t j = k;
      while (j > first && !target_start(t_[j - 1])) --j;
      if (j == k || !t_[j].is_identifier() || !own.count(std::string(t_[j].text))) return false;
      for (size_t x = j; x < k; ++x) {
        if (t_[x].is("[") || t_[x].is("*") || t_[x].is("->") || t_[x].is("(") || t_[x].is("::")) return false;
        if (t_[x].is_identifier() && !t_[x - 1].is(".") && !own.count(std::string(t_[x].text))) return false;
      }
      continue;
    }
    if (!tk.is_identifier()) continue;
    if (t_[k - 1].is(".") || t_[k - 1].is("->") || t_[k - 1].is("::")) {  // a member or qualified name
      if (at(k + 1, "(") && !callable(k)) return false;
      continue;
    }
    const std::string name(tk.text);
    if (at(k + 1, "(") && (frame_->declared.count(name) || frame_->params.count(name))) return false;
    if (at(k + 1, "(") && !callable(k)) return false;
    if (at(k + 1, "<") && !callable(k)) return false;  // `f<T>(…)`, or a comparison: either way
    if (frame_->varying.count(name) && !own.count(name) && !frame_->group_vars.count(name))
      return false;  // differs between threads
    // A threadgroup scalar (or a scalar parameter passed by reference) is memory too.
    if (!own.count(name) && !at(k + 1, "[") && frame_->memory.count(name) && (frame_->memory.at(name) & written))
      return false;
  }
  return true;
}

bool Splitter::only_read_outside(const std::string& name, const std::vector<std::pair<size_t, size_t>>& inside,
                                 size_t declared_at) const {
  for (size_t k = frame_->body_open + 1; k < frame_->body_close; ++k) {
    if (!t_[k].is(name) || t_[k - 1].is(".") || t_[k - 1].is("->") || t_[k - 1].is("::")) continue;
    bool in = false;
    for (auto [a, b] : inside) in = in || (k >= a && k <= b);
    if (in) continue;
    if (k < declared_at) return false;  // another entity of that name, or a use the hoisting would change
    const Token& prev = t_[k - 1];
    if (prev.is("++") || prev.is("--")) return false;
    if ((prev.is("&") || prev.is("&&")) && !operand_end(t_[k - 2])) return false;  // its address
    if ((prev.is("=") || prev.is("{") || prev.is("(")) && t_[k - 2].is_identifier() &&
        (t_[k - 3].is("&") || t_[k - 3].is("&&")))
      return false;  // binds a reference
    size_t j = k + 1;  // past `.x`, `->y`, `[i]`
    while (j < frame_->body_close) {
      if (t_[j].is(".") || t_[j].is("->")) j += 2;
      else if (t_[j].is("[")) j = matching_bracket(t_, j) + 1;
      else break;
    }
    if (is_assignment(t_[j].text) || t_[j].is("++") || t_[j].is("--") || t_[j].is("(")) return false;
    if (!(prev.is("(") || prev.is(",")) || !(t_[j].is(")") || t_[j].is(","))) continue;
    // A whole argument: the function must take it by value.
    size_t open = k;
    int depth = 0;
    while (open-- > frame_->body_open + 1) {
      const Token& x = t_[open];
      if (x.is(")") || x.is("]") || x.is("}")) ++depth;
      else if ((x.is("(") || x.is("[") || x.is("{")) && depth-- == 0) break;
      else if (x.is(";") && depth == 0) break;
    }
    if (!t_[open].is("(")) continue;  // an index or a braced list: read
    const Token& f = t_[open - 1];
    if (waits_.count(open - 1)) continue;  // inlined: arguments bind by value
    if (!f.is_identifier()) return false;
    if (!operand_end(f) || f.is("if") || f.is("while") || f.is("for") || f.is("switch")) continue;  // grouping
    const std::string fname(f.text);
    if (writes_argument(fname) || frame_->declared.count(fname) || frame_->params.count(fname) ||
        !pure_function(fname))
      return false;
  }
  return true;
}

bool Splitter::group_var_type(const Declaration& d, size_t name, size_t end, std::string& type) const {
  if (at(name + 1, "[")) return false;
  bool pointer = false;
  for (size_t k = d.type_first; k <= d.type_last; ++k) {
    const Token& tk = t_[k];
    if (tk.is("&") || tk.is("&&") || tk.is("static") || tk.is("extern") || tk.is("thread_local") || tk.is("(") ||
        tk.is("decltype") || tk.is("constexpr") || (tk.is_identifier() && frame_->body_types.count(std::string(tk.text))))
      return false;
    if (tk.is("*")) pointer = true;
  }
  for (size_t k = d.type_last + 1; k < name; ++k) pointer = pointer || t_[k].is("*");  // `float *q`
  if (pointer && !d.single) return false;  // `float *p, q;`: which declarator the `*` binds is not tracked
  if (has_token(d, "auto")) {
    if (name != d.name || pointer || !at(name + 1, "=") || at(name + 2, "{") || end < name + 2) return false;
    type = "std::decay_t<decltype(" + render(name + 2, end) + ")>";
    return true;
  }
  for (size_t k = d.type_first; k <= d.type_last; ++k) {
    if (t_[k].is("const") && (!pointer || k == d.type_last)) continue;  // top-level const
    type += render(k, k);
    type += ' ';
  }
  for (size_t k = d.type_last + 1; k < name; ++k) type += render(k, k);
  return !(at(name + 1, "=") && at(name + 2, "{"));
}

std::vector<bool> Splitter::uniform_statements(const std::vector<const Stmt*>& region) const {
  std::vector<bool> uniform(region.size(), false);
  const int written = memory_written(region);
  struct Facts {
    std::vector<std::pair<std::string, size_t>> names;  // declared at any depth
    std::optional<Declaration> decl;                    // declared at the statement's level
  };
  std::vector<Facts> facts(region.size());
  for (size_t i = 0; i < region.size(); ++i) {
    const Stmt& s = *region[i];
    // A thread's return changes who runs the statements after it; statements
    // before it run for at least the threads that will return.
    if (mentions(s.first, s.last, "return")) break;
    std::function<bool(const Stmt&)> opaque = [&](const Stmt& x) {
      if (x.kind == StmtKind::Opaque) return true;
      for (const Stmt& c : x.children)
        if (opaque(c)) return true;
      return false;
    };
    if (opaque(s) || shared_.count(s.first)) continue;
    bool refs = false;
    declared_names(s, facts[i].names, refs);
    if (refs) continue;
    bool once = true;  // every name it declares names one variable in the whole function
    for (const auto& n : facts[i].names)
      once = once && frame_->declared.count(n.first) && frame_->declared.at(n.first) == 1 &&
             !frame_->params.count(n.first) && !frame_->group_vars.count(n.first);
    if (!once) continue;
    facts[i].decl = declaration(s);
    if (facts[i].decl && is_threadgroup_declaration(*facts[i].decl)) continue;
    uniform[i] = true;
  }
  // A statement stays uniform while what it reads and writes does: drop
  // statements until none changes (dropping one un-declares its variables).
  for (bool changed = true; changed;) {
    changed = false;
    std::set<std::string> own;
    std::vector<std::pair<size_t, size_t>> inside;
    for (size_t i = 0; i < region.size(); ++i) {
      if (!uniform[i]) continue;
      for (const auto& n : facts[i].names) own.insert(n.first);
      inside.push_back({region[i]->first, region[i]->last});
    }
    for (size_t i = 0; i < region.size(); ++i) {
      if (!uniform[i]) continue;
      const Stmt& s = *region[i];
      bool ok = uniform_tokens(s.first, s.last, own, written);
      if (ok && facts[i].decl) {
        for (auto [a, b] : split_commas(facts[i].decl->name, s.last - 1, false)) {
          size_t name = a;
          while (name <= b && !t_[name].is_identifier()) ++name;
          std::string type;
          ok = ok && name <= b && group_var_type(*facts[i].decl, name, b, type) &&
               only_read_outside(std::string(t_[name].text), inside, s.first);
        }
      }
          if (!ok) {
        uniform[i] = false;
        changed = true;
      }
    }
  }
  return uniform;
}

void Splitter::emit_uniform(const std::vector<const Stmt*>& stmts) {
  const std::string run = "mps_run_" + std::to_string(next_array_++);
  out_ += "const bool " + run + " = mps_host::any_running(mps_g);  // group-uniform statements\n";
  for (const Stmt* s : stmts) {
    out_ += line_marker(s->first);
    const auto d = declaration(*s);
    if (!d) {
      out_ += "if (" + run + ") {\n" + render(s->first, s->last) + "\n}\n";
      continue;
    }
    for (auto [a, b] : split_commas(d->name, s->last - 1, false)) {
      size_t name = a;
      while (name <= b && !t_[name].is_identifier()) ++name;
      std::string type;
      group_var_type(*d, name, b, type);
      const std::string var(t_[name].text);
      out_ += type + " " + var + "{};";  // a value even where no thread runs
      if (at(name + 1, "=")) out_ += " if (" + run + ") " + var + " = " + render(name + 2, b) + ";";
      else if (at(name + 1, "(") || at(name + 1, "{"))
        out_ += " if (" + run + ") " + var + " = " + type + render(name + 1, b) + ";";
      // Still counted as varying for the control flow around barriers: where no
      // thread runs it holds no computed value, so a group-level loop must not test it.
      frame_->group_vars.insert(var);
    }
    out_ += "\n";
  }
}

}  // namespace mps_shim::host::lane_loops
