// Module init. Node-API modules are context-aware: each environment (main
// thread, worker thread) runs this and gets its own AddonData.
#include "addon.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new baton::AddonData());
  baton::InitFd(env, exports);
  baton::InitListener(env, exports);
  baton::InitSockInfo(env, exports);
  baton::InitChannel(env, exports);
  baton::InitPoll(env, exports);
  return exports;
}

NODE_API_MODULE(baton, Init)
