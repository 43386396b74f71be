// Failing syscalls become JS errors shaped like Node's own SystemError, so
// callers handle addon errors and core errors (net, fs) the same way:
// { message: "bind EADDRINUSE: address already in use", code: "EADDRINUSE",
//   errno: -98, syscall: "bind" }.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <string>

// `err` is a positive errno or a negative libuv status. Plain N-API that never
// throws or aborts: libuv callbacks use it too, and there N-API calls fail
// while the environment is stopping (node-addon-api would abort on that).
inline napi_value SystemErrorValue(napi_env env, const char* syscall, int err) {
  const int status = err > 0 ? -err : err;
  // libuv names every errno a caller of ours handles but ECHILD (waitpid).
  const bool child = status == -ECHILD;
  const char* code = child ? "ECHILD" : uv_err_name(status);
  const std::string message = std::string(syscall) + " " + code + ": " + (child ? "no child process" : uv_strerror(status));
  napi_value text = nullptr, error = nullptr, value = nullptr;
  napi_create_string_utf8(env, message.c_str(), message.size(), &text);
  napi_create_error(env, nullptr, text, &error);
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &value) == napi_ok) napi_set_named_property(env, error, "code", value);
  if (napi_create_int32(env, status, &value) == napi_ok) napi_set_named_property(env, error, "errno", value);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &value) == napi_ok) napi_set_named_property(env, error, "syscall", value);
  return error;
}

inline Napi::Error SystemError(Napi::Env env, const char* syscall, int err) {
  return Napi::Error(env, SystemErrorValue(env, syscall, err));
}

// Returns `result`, or throws for errno when the syscall returned -1.
inline int Check(Napi::Env env, const char* syscall, int result) {
  if (result < 0) throw SystemError(env, syscall, errno);
  return result;
}
