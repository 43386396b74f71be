// The control channel's syscalls: Unix SOCK_SEQPACKET sockets (record
// boundaries kept), connect/accept, SO_PEERCRED, and records carrying fds
// as SCM_RIGHTS. Nothing here blocks: every call is MSG_DONTWAIT or on a
// non-blocking socket, and "would block" is a return value, not an error.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <vector>

#include "addon.h"
#include "errors.h"

namespace baton {

static constexpr size_t kMaxFds = 253;  // SCM_MAX_FD

static socklen_t UnixAddress(const Napi::CallbackInfo& info, sockaddr_un& address) {
  const std::string path = StringArg(info, 0);
  const bool abstract = BoolArg(info, 1);
  address = sockaddr_un{};
  address.sun_family = AF_UNIX;
  // The abstract name is the bytes after a leading NUL; its length is part of the address.
  const size_t offset = abstract ? 1 : 0;
  if (path.empty() || path.size() + offset + (abstract ? 0 : 1) > sizeof address.sun_path) {
    throw SystemError(info.Env(), ENAMETOOLONG, "bind");
  }
  memcpy(address.sun_path + offset, path.data(), path.size());
  return offsetof(sockaddr_un, sun_path) + offset + path.size() + (abstract ? 0 : 1);
}

static int SeqpacketSocket(Napi::Env env) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket");
  return fd;
}

static Napi::Value UnixListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sockaddr_un address;
  socklen_t length = UnixAddress(info, address);
  const bool abstract = BoolArg(info, 1);
  const int mode = IntArg(info, 2);
  const int backlog = IntArg(info, 3);
  int fd = SeqpacketSocket(env);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), length) < 0) {
    int err = errno;
    close(fd);
    throw SystemError(env, err, "bind");
  }
  // chmod before listen(): until listen() every connect() is refused, so no
  // peer can slip in while the mode is still the umask's.
  const char* failed = nullptr;
  if (!abstract && chmod(address.sun_path, mode) < 0) {
    failed = "chmod";
  } else if (listen(fd, backlog) < 0) {
    failed = "listen";
  }
  if (failed) {
    int err = errno;
    if (!abstract) unlink(address.sun_path);
    close(fd);
    throw SystemError(env, err, failed);
  }
  return Napi::Number::New(env, fd);
}

static Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sockaddr_un address;
  socklen_t length = UnixAddress(info, address);
  int fd = SeqpacketSocket(env);
  int result;
  do {
    result = connect(fd, reinterpret_cast<sockaddr*>(&address), length);
  } while (result < 0 && errno == EINTR);
  if (result < 0) {
    int err = errno;
    close(fd);
    throw SystemError(env, err, "connect");
  }
  return Napi::Number::New(env, fd);
}

static Napi::Value Accept(const Napi::CallbackInfo& info) {
  const int listener = IntArg(info, 0);
  for (;;) {
    int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return Napi::Number::New(info.Env(), fd);
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(info.Env(), -1);
    if (errno != EINTR && errno != ECONNABORTED) ThrowErrno(info.Env(), "accept4");
  }
}

static Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (getsockopt(IntArg(info, 0), SOL_SOCKET, SO_PEERCRED, &credentials, &length) < 0) ThrowErrno(env, "getsockopt");
  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", credentials.pid);
  result.Set("uid", credentials.uid);
  result.Set("gid", credentials.gid);
  return result;
}

static Napi::Value SendMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = IntArg(info, 0);
  if (!info[1].IsBuffer() || !info[2].IsArray()) throw Napi::TypeError::New(env, "sendMessage(fd, Buffer, fds[])");
  auto data = info[1].As<Napi::Buffer<char>>();
  auto list = info[2].As<Napi::Array>();
  const size_t count = list.Length();
  if (count > kMaxFds) throw SystemError(env, EINVAL, "sendmsg");

  iovec iov{data.Data(), data.Length()};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  std::vector<char> control(count > 0 ? CMSG_SPACE(count * sizeof(int)) : 0);
  if (count > 0) {
    message.msg_control = control.data();
    message.msg_controllen = control.size();
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(count * sizeof(int));
    int* fds = reinterpret_cast<int*>(CMSG_DATA(header));
    for (size_t i = 0; i < count; i++) fds[i] = list.Get(i).As<Napi::Number>().Int32Value();
  }
  ssize_t sent;
  do {
    sent = sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
    ThrowErrno(env, "sendmsg");
  }
  return Napi::Boolean::New(env, true);
}

static Napi::Value ReceiveMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = IntArg(info, 0);
  const size_t maxBytes = IntArg(info, 1);
  const size_t maxFds = IntArg(info, 2);

  std::vector<char> buffer(maxBytes);
  std::vector<char> control(CMSG_SPACE(maxFds * sizeof(int)));
  iovec iov{buffer.data(), buffer.size()};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  message.msg_controllen = control.size();
  ssize_t received;
  do {
    received = recvmsg(fd, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (received < 0 && errno == EINTR);
  if (received < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    ThrowErrno(env, "recvmsg");
  }

  Napi::Array fds = Napi::Array::New(env);
  uint32_t count = 0;
  if (message.msg_controllen > 0) {
    for (cmsghdr* header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
      if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
      const size_t n = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const int* received_fds = reinterpret_cast<const int*>(CMSG_DATA(header));
      for (size_t i = 0; i < n; i++) fds.Set(count++, received_fds[i]);
    }
  }
  Napi::Object result = Napi::Object::New(env);
  const size_t length = std::min(static_cast<size_t>(received), buffer.size());
  result.Set("data", Napi::Buffer<char>::Copy(env, buffer.data(), length));
  result.Set("fds", fds);
  result.Set("truncated", (message.msg_flags & MSG_TRUNC) != 0);
  result.Set("controlTruncated", (message.msg_flags & MSG_CTRUNC) != 0);
  return result;
}

void InitChannel(Napi::Env env, Napi::Object exports) {
  exports.Set("unixListen", Napi::Function::New(env, UnixListen, "unixListen"));
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect, "unixConnect"));
  exports.Set("accept", Napi::Function::New(env, Accept, "accept"));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
  exports.Set("sendMessage", Napi::Function::New(env, SendMessage, "sendMessage"));
  exports.Set("receiveMessage", Napi::Function::New(env, ReceiveMessage, "receiveMessage"));
}

}  // namespace baton
