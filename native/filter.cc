// Classic BPF programs on sockets, built in TypeScript (src/listeners/steering.ts):
// a reuseport program picks which socket of a SO_REUSEPORT group gets each
// new connection or datagram; a socket filter decides which packets one
// socket takes at all. Classic BPF needs no privilege.
#include <linux/filter.h>
#include <sys/socket.h>

#include <vector>

#include "addon.h"
#include "errors.h"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif
#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68
#endif

namespace {

// 'reuseport' is the group's program (whichever member sets it); 'socket' is this socket's own filter.
int AttachOption(Napi::Env env, const std::string& target) {
  if (target == "reuseport") return SO_ATTACH_REUSEPORT_CBPF;
  if (target == "socket") return SO_ATTACH_FILTER;
  throw Napi::TypeError::New(env, "target must be 'reuseport' or 'socket'");
}

int DetachOption(Napi::Env env, const std::string& target) {
  if (target == "reuseport") return SO_DETACH_REUSEPORT_BPF;
  if (target == "socket") return SO_DETACH_FILTER;
  throw Napi::TypeError::New(env, "target must be 'reuseport' or 'socket'");
}

}  // namespace

// (fd, target, [code, jt, jf, k, code, jt, jf, k, ...])
Napi::Value AttachBpf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = IntArg(info, 0);
  const int option = AttachOption(env, StringArg(info, 1));
  const Napi::Array flat = info[2].As<Napi::Array>();
  std::vector<sock_filter> program(flat.Length() / 4);
  for (size_t i = 0; i < program.size(); i++) {
    program[i].code = static_cast<__u16>(flat.Get(4 * i).As<Napi::Number>().Uint32Value());
    program[i].jt = static_cast<__u8>(flat.Get(4 * i + 1).As<Napi::Number>().Uint32Value());
    program[i].jf = static_cast<__u8>(flat.Get(4 * i + 2).As<Napi::Number>().Uint32Value());
    program[i].k = flat.Get(4 * i + 3).As<Napi::Number>().Uint32Value();
  }
  sock_fprog fprog{static_cast<unsigned short>(program.size()), program.data()};
  Check(env, "setsockopt", setsockopt(fd, SOL_SOCKET, option, &fprog, sizeof(fprog)));
  return env.Undefined();
}

// ENOENT when nothing was attached.
Napi::Value DetachBpf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = IntArg(info, 0);
  const int option = DetachOption(env, StringArg(info, 1));
  int unused = 0;
  Check(env, "setsockopt", setsockopt(fd, SOL_SOCKET, option, &unused, sizeof(unused)));
  return env.Undefined();
}
