// errno -> a JS Error shaped like Node's own SystemError:
// { message: "<syscall> <CODE>: <strerror>", code, errno (negative), syscall }.
#pragma once

#include <napi.h>
#include <uv.h>

#include <string>

namespace baton {

inline Napi::Error SystemError(Napi::Env env, int err, const char* syscall) {
  const char* code = uv_err_name(-err);
  std::string message = std::string(syscall) + " " + code + ": " + uv_strerror(-err);
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, -err));
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

// Throws the SystemError for the current errno.
[[noreturn]] inline void ThrowErrno(Napi::Env env, const char* syscall) {
  throw SystemError(env, errno, syscall);
}

}  // namespace baton
