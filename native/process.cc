// Processes across an exec of this one: execve itself, a pidfd to learn when
// a child this image did not spawn exits (libuv reaps only its own, by pid),
// waitpid to reap it, and the close-on-exec flag of the fds an exec keeps.
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "addon.h"
#include "errors.h"

namespace {

std::vector<std::string> Strings(Napi::Array array) {
  std::vector<std::string> out;
  for (uint32_t i = 0; i < array.Length(); i++) out.push_back(array.Get(i).As<Napi::String>().Utf8Value());
  return out;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

// Returns only on failure, by throwing.
Napi::Value Execve(const Napi::CallbackInfo& info) {
  const std::string path = StringArg(info, 0);
  std::vector<std::string> argv = Strings(info[1].As<Napi::Array>());
  std::vector<std::string> envp = Strings(info[2].As<Napi::Array>());
  std::vector<char*> argvp = Pointers(argv);
  std::vector<char*> envpp = Pointers(envp);
  execve(path.c_str(), argvp.data(), envpp.data());
  throw SystemError(info.Env(), "execve", errno);
}

// pidfd_open(2) (Linux 5.3): readable once the process exits; a zombie has one too.
// Its fds are CLOEXEC always.
Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  const int fd = static_cast<int>(syscall(SYS_pidfd_open, IntArg(info, 0), 0));
  return Napi::Number::New(info.Env(), Check(info.Env(), "pidfd_open", fd));
}

// waitpid(pid, WNOHANG): null while it runs, else { code, signal } (one of them null).
Napi::Value WaitPid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int status = 0;
  pid_t done;
  do done = waitpid(IntArg(info, 0), &status, WNOHANG);
  while (done < 0 && errno == EINTR);
  Check(env, "waitpid", done);
  if (done == 0) return env.Null();
  Napi::Object result = Napi::Object::New(env);
  result.Set("code", WIFEXITED(status) ? Napi::Number::New(env, WEXITSTATUS(status)) : env.Null());
  result.Set("signal", WIFSIGNALED(status) ? Napi::Number::New(env, WTERMSIG(status)) : env.Null());
  return result;
}

// fcntl(F_SETFD): whether the fd closes at the next exec; returns whether it did before.
Napi::Value SetCloexec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = IntArg(info, 0);
  const int flags = Check(env, "fcntl", fcntl(fd, F_GETFD));
  Check(env, "fcntl", fcntl(fd, F_SETFD, BoolArg(info, 1) ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC));
  return Napi::Boolean::New(env, (flags & FD_CLOEXEC) != 0);
}
