#include "frontend/overloads.h"

#include <map>
#include <optional>
#include <string>

#include "frontend/diagnostics.h"

namespace mps_shim::frontend {

namespace {

enum class Scope { Namespace, Class, Other };

struct Definition {
  size_t first, name, body_open, last;
  bool uses_address_space;
};

class OverloadFinder {
 public:
  explicit OverloadFinder(const LexedSource& src) : src_(src), t_(src.tokens) {}

  std::vector<TokenRange> run() {
    std::vector<TokenRange> drop;
    std::map<std::string, Definition> seen;  // by signature with address spaces erased
    std::map<std::string, size_t> seen_classes;  // specialisations by erased head: the `{` of the first
    std::vector<std::string> path;           // enclosing namespaces and classes
    std::vector<Scope> scopes;
    size_t decl_start = 0;
    for (size_t i = 0; i < t_.size(); ++i) {
      const Token& tk = t_[i];
      if (tk.is(";") || tk.is("}") || (tk.is(":") && i > 0 && is_access(t_[i - 1]))) {
        if (tk.is("}") && !scopes.empty()) {
          if (scopes.back() != Scope::Other) path.pop_back();
          scopes.pop_back();
        }
        decl_start = i + 1;
        continue;
      }
      if (!tk.is("{")) continue;
      const Scope kind = scope_kind(decl_start, i);
      if (kind == Scope::Class && drops_class(decl_start, i, path, seen_classes, drop)) {
        i = drop.back().last;
        decl_start = i + 1;
        continue;
      }
      if (kind != Scope::Other) {
        scopes.push_back(kind);
        path.push_back(scope_name(decl_start, i));
        decl_start = i + 1;
        continue;
      }
      const size_t close = matching_bracket(t_, i);
      if (close >= t_.size()) return drop;  // the compiler will report it
      if (auto def = function_definition(decl_start, i, close)) {
        std::string key;
        for (const std::string& p : path) key += p + "::";
        key += signature(*def);
        auto [it, fresh] = seen.emplace(key, *def);
        if (!fresh && (def->uses_address_space || it->second.uses_address_space)) {
          if (erased(it->second.body_open, it->second.last) != erased(def->body_open, def->last))
            error_at(src_, t_[def->name],
                     concat("overloads of '", t_[def->name].text, "' differ only in address space but have different "
                            "bodies; the host engine has one address space and cannot tell them apart"));
          drop.push_back({def->first, def->last});
        }
      }
      i = close;  // bodies and initialisers hold no namespace-level definitions
      decl_start = i + 1;
    }
    return drop;
  }

 private:
  // A class template specialisation on an address space (MLX's `pointer_element<thread T*>` and
  // `pointer_element<device T*>`) is the same specialisation once address spaces are erased: the
  // later ones are dropped (appended to `drop`, returning true) when their bodies are the same.
  bool drops_class(size_t first, size_t brace, const std::vector<std::string>& path,
                   std::map<std::string, size_t>& seen_classes, std::vector<TokenRange>& drop) const {
    bool space = false;
    for (size_t j = first; j < brace; ++j) space |= is_address_space(t_[j]);
    if (!space) return false;
    const size_t close = matching_bracket(t_, brace);
    if (close >= t_.size()) return false;
    std::string key;
    for (const std::string& p : path) key += p + "::";
    key += erased(first, brace - 1);
    auto [it, fresh] = seen_classes.emplace(key, brace);
    if (fresh) return false;
    if (erased(it->second, matching_bracket(t_, it->second)) != erased(brace, close)) {
      size_t name = brace;  // the class's name: the word after struct/class/union
      for (size_t j = first; j + 1 < brace; ++j)
        if (t_[j].is("struct") || t_[j].is("class") || t_[j].is("union")) name = j + 1;
      error_at(src_, t_[name], concat("specialisations of '", t_[name].text, "' differ only in address space but "
                                      "have different bodies; the host engine has one address space and cannot "
                                      "tell them apart"));
    }
    drop.push_back({first, close + 1 < t_.size() && t_[close + 1].is(";") ? close + 1 : close});
    return true;
  }

  static bool is_access(const Token& t) { return t.is("public") || t.is("private") || t.is("protected"); }

  Scope scope_kind(size_t first, size_t brace) const {
    for (size_t k = first; k < brace; ++k) {
      if (t_[k].is("namespace")) return Scope::Namespace;
      if (t_[k].is("(") || t_[k].is("=")) return Scope::Other;
      if (t_[k].is("struct") || t_[k].is("class") || t_[k].is("union")) return Scope::Class;
    }
    return Scope::Other;
  }

  // The scope's name; a class's with its template arguments, since the
  // specialisations `S<1, T, false>` and `S<2, T, true>` are different classes.
  std::string scope_name(size_t first, size_t brace) const {
    for (size_t k = first; k < brace; ++k) {
      if (!(t_[k].is("namespace") || t_[k].is("struct") || t_[k].is("class") || t_[k].is("union")) || k + 1 >= brace ||
          !t_[k + 1].is_identifier())
        continue;
      std::string name(t_[k + 1].text);
      for (size_t j = k + 2; j < brace && !t_[j].is(":"); ++j) name += t_[j].text;  // up to a base clause
      return name;
    }
    return "";
  }

  // `... name ( params ) qualifiers {` where the tokens before `{` end a parameter list.
  std::optional<Definition> function_definition(size_t first, size_t brace, size_t close) const {
    size_t k = brace;
    while (k > first && !t_[k - 1].is(")")) {
      const Token& q = t_[k - 1];
      if (!(q.is("const") || q.is_identifier() || q.is("&") || q.is("&&") || q.is("]") || q.is("["))) return std::nullopt;
      --k;
    }
    if (k == first) return std::nullopt;
    const size_t open = matching_open_paren(t_, k - 1, first);
    if (open == first) return std::nullopt;
    size_t name = open - 1;
    // An operator (`operator+=(`, `operator vec<T, 2>(`, `operator()(`): named by the word operator.
    for (size_t j = open - 1; j > first && !t_[name].is_identifier(); --j)
      if (t_[j - 1].is("operator")) name = j - 1;
    if (!t_[name].is_identifier()) return std::nullopt;
    bool space = false;
    for (size_t j = first; j < brace; ++j) space |= is_address_space(t_[j]);
    return Definition{first, name, brace, close, space};
  }

  // What the host compiler sees of a token: address spaces are erased, and
  // `constant` (read-only) becomes `const`; a repeated `const` is one.
  void append(std::string& s, size_t k) const {
    const Token& t = t_[k];
    std::string_view text = t.is("constant") ? "const" : t.text;
    if (is_address_space(t) && (!t.is("constant") || qualifies_constructor(t_, k))) return;
    if (text == "const" && s.size() >= 6 && s.compare(s.size() - 6, 6, "const ") == 0) return;
    s += text;
    s += ' ';
  }

  // The declaration up to its body as the host compiler sees it, parameter names removed.
  std::string signature(const Definition& d) const {
    std::string key;
    for (size_t j = d.first; j < d.body_open; ++j) {
      const bool names_parameter = t_[j].is_identifier() && j + 1 < d.body_open &&
                                   (t_[j + 1].is(",") || t_[j + 1].is(")")) && j > d.name + 1 &&
                                   !t_[j - 1].is("(") && !t_[j - 1].is(",");
      if (!names_parameter) append(key, j);
    }
    return key;
  }

  std::string erased(size_t first, size_t last) const {
    std::string s;
    for (size_t j = first; j <= last; ++j) append(s, j);
    return s;
  }

  const LexedSource& src_;
  const std::vector<Token>& t_;
};

}  // namespace

std::vector<TokenRange> redundant_address_space_overloads(const LexedSource& source) {
  return OverloadFinder(source).run();
}

}  // namespace mps_shim::frontend
