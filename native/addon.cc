// Module entry point. Napi::Addon gives each environment (main thread, every
// worker thread) its own Baton instance, freed when that environment ends.
#include "addon.h"

Baton::Baton(Napi::Env env, Napi::Object exports) {
  auto fn = [env](const char* name, Napi::Function::Callback cb) {
    return InstanceValue(name, Napi::Function::New(env, cb, name), napi_enumerable);
  };
  DefineAddon(exports, {
      fn("tcpBind", TcpBind),
      fn("udpBind", UdpBind),
      fn("connectToSelf", ConnectToSelf),
      fn("listen", Listen),
      fn("shutdown", Shutdown),
      fn("dup", Dup),
      fn("close", Close),
      fn("socketInfo", SocketInfo),
      fn("attachBpf", AttachBpf),
      fn("detachBpf", DetachBpf),
      fn("unixListen", UnixListen),
      fn("unixConnect", UnixConnect),
      fn("accept", Accept),
      fn("peerCredentials", PeerCredentials),
      fn("sendMessage", SendMessage),
      fn("receiveMessage", ReceiveMessage),
      fn("sendDatagram", SendDatagram),
      fn("execve", Execve),
      fn("pidfdOpen", PidfdOpen),
      fn("waitpid", WaitPid),
      fn("setCloexec", SetCloexec),
      fn("sendWhole", SendWhole),
      InstanceValue("Poll", DefinePoll(env), napi_enumerable),
      InstanceMethod("openHandles", &Baton::OpenHandles, napi_enumerable),
      InstanceValue("SCM_MAX_FD", Napi::Number::New(env, static_cast<double>(kMaxFds)), napi_enumerable),
  });
}

Napi::Value Baton::OpenHandles(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(openPolls));
}

NODE_API_ADDON(Baton)
