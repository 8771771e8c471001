// Front-end errors point at the user's source: "library.metal:12: error: ...".
#pragma once

#include <string>

#include "frontend/lexer.h"
#include "util/error.h"

namespace mps_shim::frontend {

[[noreturn]] inline void error_at(const LexedSource& src, const Token& tok, const std::string& message) {
  throw CompileError(concat(src.files[size_t(tok.file)], ":", tok.line, ": error: ", message));
}

}  // namespace mps_shim::frontend
