// Function constants: `constant T name [[function_constant(index)]];` at
// namespace scope, set when a function is made (Metal's
// MTLFunctionConstantValues), and `is_function_constant_defined(name)`.
//
// The front end finds them (name, type, index: an integer constant expression
// of literals once macros are expanded, such as `1200 + 0`), which names each
// kernel may read, and which are optional: Metal requires a value for every
// constant a function uses unless the library tests it with
// is_function_constant_defined. A backend compiles each specialisation apart:
// specialise_function_constants rewrites every declaration into a
// compile-time constant of its value (`constexpr short name = short(3);`, or
// the type's zero when it has none) and every is_function_constant_defined
// into `true` or `false`, so the constants fold in `if` conditions and work as
// template arguments.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "frontend/kernel_decl.h"
#include "frontend/lexer.h"

namespace mps_shim::frontend {

// The type whose MTLDataType code is `code`, if it is one a function constant may have.
std::optional<ConstantType> constant_type_from_code(uint32_t code);

// The type spelled `text` ("short", "int16_t", "metal::float4"...), if it is one.
std::optional<ConstantType> constant_type_from_name(const std::string& text);

// Finds the library's function constants and is_function_constant_defined
// calls, and the constants each kernel may read (KernelDecl::function_constants):
// those named in the bodies it may reach (call_graph.h, by name), in its
// parameters' [[function_constant(c)]] attributes, and in the initializers of
// namespace-scope variables those name. Throws CompileError, at the line, for
// a declaration Metal would reject (a type that is not a scalar or vector, an
// index that is not an integer constant, a duplicate index or name).
void find_function_constants(const LexedSource& source, ParsedLibrary& library);

// One value per function constant of the library (its bytes, size
// type.size()), or none: undefined.
using ConstantValues = std::vector<std::optional<std::string>>;

// Rewrites the declarations and is_function_constant_defined calls for one
// specialisation: a defined constant is `constexpr T name = <value>;` (`const`
// for bfloat and vectors), an undefined one holds T's zero and tests false.
void specialise_function_constants(const LexedSource& source, const ParsedLibrary& library, const ConstantValues& values,
                                   TokenEdits& edits);

// `value` (bytes of `type`) as text for messages: "3", "true", "1.5", "(1, 2)".
std::string constant_value_text(const ConstantType& type, const std::string& value);

}  // namespace mps_shim::frontend
