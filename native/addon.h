// Declarations shared by the addon's files: the per-environment state, the
// exported functions, and small helpers for fds and (already validated) args.
#pragma once

#include <napi.h>
#include <unistd.h>

#include <cstddef>
#include <string>

// SCM_MAX_FD: the kernel refuses more fds in one message. Exported as
// SCM_MAX_FD, the one definition JS uses.
constexpr size_t kMaxFds = 253;

// Per napi_env state (one per thread that loads the addon), so nothing is
// shared between worker threads.
class Baton : public Napi::Addon<Baton> {
 public:
  Baton(Napi::Env env, Napi::Object exports);

  // Poll handles neither closed nor closing.
  size_t openPolls = 0;

 private:
  Napi::Value OpenHandles(const Napi::CallbackInfo& info);
};

// Closes the fd when an error unwinds before ownership reaches JS.
class OwnedFd {
 public:
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(OwnedFd&& other) : fd_(other.release()) {}
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// Arguments are validated in src/binding.ts; these conversions only throw a
// TypeError if a caller bypassed it.
inline int IntArg(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::Number>().Int32Value();
}
inline bool BoolArg(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::Boolean>().Value();
}
inline std::string StringArg(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::String>().Utf8Value();
}

// listener.cc
Napi::Value TcpBind(const Napi::CallbackInfo& info);
Napi::Value UdpBind(const Napi::CallbackInfo& info);
Napi::Value ConnectToSelf(const Napi::CallbackInfo& info);
// fd.cc
Napi::Value Listen(const Napi::CallbackInfo& info);
Napi::Value Shutdown(const Napi::CallbackInfo& info);
Napi::Value Dup(const Napi::CallbackInfo& info);
Napi::Value Close(const Napi::CallbackInfo& info);
// filter.cc
Napi::Value AttachBpf(const Napi::CallbackInfo& info);
Napi::Value DetachBpf(const Napi::CallbackInfo& info);
// sockinfo.cc
Napi::Value SocketInfo(const Napi::CallbackInfo& info);
// channel.cc
Napi::Value UnixListen(const Napi::CallbackInfo& info);
Napi::Value UnixConnect(const Napi::CallbackInfo& info);
Napi::Value Accept(const Napi::CallbackInfo& info);
Napi::Value PeerCredentials(const Napi::CallbackInfo& info);
Napi::Value SendMessage(const Napi::CallbackInfo& info);
Napi::Value ReceiveMessage(const Napi::CallbackInfo& info);
// datagram.cc
Napi::Value SendDatagram(const Napi::CallbackInfo& info);
// process.cc
Napi::Value Execve(const Napi::CallbackInfo& info);
Napi::Value PidfdOpen(const Napi::CallbackInfo& info);
Napi::Value WaitPid(const Napi::CallbackInfo& info);
Napi::Value SetCloexec(const Napi::CallbackInfo& info);
// stream.cc
Napi::Value SendWhole(const Napi::CallbackInfo& info);
// poll.cc
Napi::Function DefinePoll(Napi::Env env);
