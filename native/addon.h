// What the addon's files share: per-environment state and the functions each
// file adds to the module's exports.
#pragma once

#include <napi.h>

namespace baton {

// One per environment (the main thread and each worker thread load their own).
struct AddonData {
  int openPolls = 0;
};

inline AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

// Argument readers: TypeScript validates first; these are the last line of defence.
inline int IntArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}
inline std::string StringArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}
inline bool BoolArg(const Napi::CallbackInfo& info, size_t i) { return info[i].ToBoolean().Value(); }

void InitFd(Napi::Env env, Napi::Object exports);
void InitListener(Napi::Env env, Napi::Object exports);
void InitSockInfo(Napi::Env env, Napi::Object exports);
void InitChannel(Napi::Env env, Napi::Object exports);
void InitPoll(Napi::Env env, Napi::Object exports);

}  // namespace baton
