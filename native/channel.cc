// The control channel between generations: SOCK_SEQPACKET Unix sockets, which
// keep record boundaries and carry fds (SCM_RIGHTS) and peer credentials.
#include <linux/sockios.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <memory>
#include <string>

#include "addon.h"
#include "errors.h"
#include "unixaddress.h"

namespace {

OwnedFd SeqpacketSocket(Napi::Env env) {
  return OwnedFd(Check(env, "socket", socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)));
}

template <typename F>
ssize_t RetryOnEintr(F call) {
  ssize_t result;
  do result = call();
  while (result < 0 && errno == EINTR);
  return result;
}

bool WouldBlock() { return errno == EAGAIN || errno == EWOULDBLOCK; }

// recvmsg() returns 0 both for an empty record and at EOF. EOF is the peer
// gone (POLLRDHUP) with no record bytes left queued (SIOCINQ sums them all):
// a record read just before the peer closed is then told from EOF too.
bool AtEof(Napi::Env env, int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  Check(env, "poll", RetryOnEintr([&] { return poll(&p, 1, 0); }));
  if ((p.revents & (POLLRDHUP | POLLHUP)) == 0) return false;
  int queued = 0;
  Check(env, "ioctl", ioctl(fd, SIOCINQ, &queued));
  return queued == 0;
}

// Makes sure the socket file at `path` has `mode`, without following a link:
// a symlink (or another's file) swapped in since bind() is refused, where
// chmod(path) would change whatever it points to. The fd of an O_PATH open
// cannot be fchmod()ed, but its /proc/self/fd link reaches exactly the file
// it opened (as glibc's fchmodat(AT_SYMLINK_NOFOLLOW) does it).
void EnsureSocketFileMode(Napi::Env env, const std::string& path, mode_t mode) {
  OwnedFd file(Check(env, "open", open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC)));
  struct stat stats;
  Check(env, "fstat", fstat(file.get(), &stats));
  if (S_ISLNK(stats.st_mode)) throw SystemError(env, "chmod", ELOOP);
  if (!S_ISSOCK(stats.st_mode) || stats.st_uid != geteuid()) throw SystemError(env, "chmod", EEXIST);
  if ((stats.st_mode & 07777) == mode) return;
  Check(env, "chmod", chmod(("/proc/self/fd/" + std::to_string(file.get())).c_str(), mode));
}

// Binds a filesystem socket whose file has `mode` from the start: bind()
// creates it with 0777 & ~umask, so the umask is set around it, never a
// chmod(path) afterwards (which follows a symlink swapped in meanwhile).
// The umask is the process's, shared by every thread: the main thread's JS
// is blocked in this call, but a worker thread or libuv's threadpool may
// create a file in these microseconds and gets the umask we set. So it is
// only ever narrowed (the old umask plus what `mode` withholds; 0777 between
// the two umask() calls): a file created meanwhile may come out with fewer
// permissions than asked, never more. The mode is then checked on the file
// itself, and set there if it is not `mode`: bits the old umask withholds
// (group write under 022), a directory's default ACL (which overrides the
// umask), or another thread's umask() call in between.
void BindSocketFile(Napi::Env env, int fd, const UnixAddress& address, const std::string& path, mode_t mode) {
  const mode_t old = umask(0777);
  umask(old | (0777 & ~mode));
  const int bound = bind(fd, reinterpret_cast<const sockaddr*>(&address.addr), address.length);
  const int error = errno;
  umask(old);
  if (bound < 0) throw SystemError(env, "bind", error);
  try {
    EnsureSocketFileMode(env, path, mode);
  } catch (...) {
    unlink(path.c_str());
    throw;
  }
}

}  // namespace

Napi::Value UnixListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = StringArg(info, 0);
  const bool abstract = BoolArg(info, 1);
  const UnixAddress address = MakeAddress(env, "bind", path, abstract);
  OwnedFd fd = SeqpacketSocket(env);
  // The mode is in place before listen(): no peer can connect while it is still wrong.
  if (abstract) Check(env, "bind", bind(fd.get(), reinterpret_cast<const sockaddr*>(&address.addr), address.length));
  else BindSocketFile(env, fd.get(), address, path, IntArg(info, 2));
  try {
    Check(env, "listen", listen(fd.get(), IntArg(info, 3)));
  } catch (...) {
    if (!abstract) unlink(path.c_str());  // bind() created it; do not leave it behind
    throw;
  }
  return Napi::Number::New(env, fd.release());
}

Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const UnixAddress address = MakeAddress(env, "connect", StringArg(info, 0), BoolArg(info, 1));
  OwnedFd fd = SeqpacketSocket(env);
  // A Unix connect completes or fails at once; EAGAIN (listener backlog full)
  // is a failure too, as there is no handshake to wait for.
  Check(env, "connect", connect(fd.get(), reinterpret_cast<const sockaddr*>(&address.addr), address.length));
  return Napi::Number::New(env, fd.release());
}

Napi::Value Accept(const Napi::CallbackInfo& info) {
  const int listener = IntArg(info, 0);
  for (;;) {
    const int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return Napi::Number::New(info.Env(), fd);
    if (WouldBlock()) return Napi::Number::New(info.Env(), -1);
    // ECONNABORTED: that peer gave up while queued; the next one may be fine.
    if (errno != EINTR && errno != ECONNABORTED) throw SystemError(info.Env(), "accept4", errno);
  }
}

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ucred cred;
  socklen_t length = sizeof(cred);
  Check(env, "getsockopt", getsockopt(IntArg(info, 0), SOL_SOCKET, SO_PEERCRED, &cred, &length));
  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", cred.pid);
  result.Set("uid", cred.uid);
  result.Set("gid", cred.gid);
  return result;
}

Napi::Value SendMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = IntArg(info, 0);
  Napi::Buffer<char> data = info[1].As<Napi::Buffer<char>>();
  Napi::Array fds = info[2].As<Napi::Array>();
  const size_t count = fds.Length();
  if (count > kMaxFds) throw SystemError(env, "sendmsg", EINVAL);

  iovec iov{data.Data(), data.Length()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))];
  if (count > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(count * sizeof(int));
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(count * sizeof(int));
    int* out = reinterpret_cast<int*>(CMSG_DATA(cmsg));
    for (uint32_t i = 0; i < count; i++) out[i] = fds.Get(i).As<Napi::Number>().Int32Value();
  }
  // MSG_NOSIGNAL: a closed peer is an EPIPE error, not a process-killing SIGPIPE.
  if (RetryOnEintr([&] { return sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL); }) < 0) {
    if (WouldBlock()) return Napi::Boolean::New(env, false);
    throw SystemError(env, "sendmsg", errno);
  }
  return Napi::Boolean::New(env, true);
}

Napi::Value ReceiveMessage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = IntArg(info, 0);
  const size_t maxBytes = IntArg(info, 1);
  const size_t maxFds = IntArg(info, 2);
  if (maxFds > kMaxFds) throw SystemError(env, "recvmsg", EINVAL);

  std::unique_ptr<char[]> buffer(new char[maxBytes]);
  iovec iov{buffer.get(), maxBytes};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))];
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(maxFds * sizeof(int));
  // MSG_CMSG_CLOEXEC: received fds must not leak into children we spawn.
  const ssize_t length = RetryOnEintr([&] { return recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC); });
  if (length < 0) {
    if (WouldBlock()) return env.Null();
    throw SystemError(env, "recvmsg", errno);
  }

  // Every fd installed in this process is returned, even with MSG_CTRUNC, so
  // that the caller can close what it did not want.
  Napi::Array fds = Napi::Array::New(env);
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* in = reinterpret_cast<const int*>(CMSG_DATA(cmsg));
    for (size_t i = 0; i < count; i++) fds.Set(fds.Length(), in[i]);
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("data", Napi::Buffer<char>::Copy(env, buffer.get(), length));
  result.Set("fds", fds);
  result.Set("truncated", (msg.msg_flags & MSG_TRUNC) != 0);
  result.Set("controlTruncated", (msg.msg_flags & MSG_CTRUNC) != 0);
  result.Set("eof", length == 0 && fds.Length() == 0 && AtEof(env, fd));
  return result;
}
