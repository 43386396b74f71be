// Poll: readiness of an fd on this thread's libuv loop (uv_poll_t).
//
// The uv handle lives in a heap PollState, apart from the JS wrapper, because
// the two end independently: the wrapper on close() or GC, the handle in its
// uv_close callback, and at environment teardown (worker exit) libuv handles
// must be closed before Node closes the loop. Each state registers an async
// cleanup hook for that: Node keeps the loop running after calling the hook
// until the hook is removed, which happens in the uv_close callback.
#include <uv.h>

#include <memory>

#include "addon.h"
#include "errors.h"

namespace {

class Poll;

struct PollState {
  uv_poll_t handle;
  napi_env env;
  Baton* baton;
  napi_async_cleanup_hook_handle hook = nullptr;
  // The wrapper whose callback gets events; null once closing started, as
  // libuv delivers no more events then.
  Poll* wrap = nullptr;
};

class Poll : public Napi::ObjectWrap<Poll> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Poll",
                       {InstanceMethod("start", &Poll::Start), InstanceMethod("stop", &Poll::Stop),
                        InstanceMethod("close", &Poll::Close)});
  }

  explicit Poll(const Napi::CallbackInfo& info);
  // Reached with the handle open only if the wrapper is finalized first.
  ~Poll() override {
    if (state_ != nullptr) BeginClose(state_);
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  static void BeginClose(PollState* state);
  static void OnTeardown(napi_async_cleanup_hook_handle hook, void* arg);
  static void OnClose(uv_handle_t* handle);
  static void OnPoll(uv_poll_t* handle, int status, int events);

  PollState* state_ = nullptr;  // null once closing started
  Napi::FunctionReference callback_;
};

Poll::Poll(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poll>(info) {
  Napi::Env env = info.Env();
  const int fd = IntArg(info, 0);
  if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");

  auto state = std::make_unique<PollState>();
  state->env = env;
  state->baton = env.GetInstanceData<Baton>();
  state->handle.data = state.get();
  uv_loop_t* loop;
  NAPI_THROW_IF_FAILED_VOID(env, napi_get_uv_event_loop(env, &loop));
  const int err = uv_poll_init(loop, &state->handle, fd);
  if (err < 0) throw SystemError(env, "uv_poll_init", err);
  // Cannot fail for valid arguments; from here on, OnClose owns the state.
  napi_add_async_cleanup_hook(env, OnTeardown, state.get(), &state->hook);

  state_ = state.release();
  state_->wrap = this;
  state_->baton->openPolls++;
  callback_ = Napi::Persistent(info[1].As<Napi::Function>());
  // Like Node's own handles, an open Poll stays alive without JS references.
  Ref();
}

Napi::Value Poll::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (state_ == nullptr) throw Napi::Error::New(env, "Poll.start() after close()");
  const int events = (BoolArg(info, 0) ? UV_READABLE : 0) | (BoolArg(info, 1) ? UV_WRITABLE : 0) | UV_DISCONNECT;
  const int err = uv_poll_start(&state_->handle, events, OnPoll);
  if (err < 0) throw SystemError(env, "uv_poll_start", err);
  return env.Undefined();
}

Napi::Value Poll::Stop(const Napi::CallbackInfo& info) {
  if (state_ != nullptr) uv_poll_stop(&state_->handle);
  return info.Env().Undefined();
}

Napi::Value Poll::Close(const Napi::CallbackInfo& info) {
  if (state_ != nullptr) {
    BeginClose(state_);
    callback_.Reset();  // the callback may reference this object: break the cycle
    Unref();
  }
  return info.Env().Undefined();
}

void Poll::BeginClose(PollState* state) {
  if (state->wrap != nullptr) state->wrap->state_ = nullptr;
  state->wrap = nullptr;
  state->baton->openPolls--;
  uv_close(reinterpret_cast<uv_handle_t*>(&state->handle), OnClose);
}

void Poll::OnTeardown(napi_async_cleanup_hook_handle, void* arg) {
  auto* state = static_cast<PollState*>(arg);
  // If JS closed it already, OnClose is pending and will remove the hook.
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&state->handle))) BeginClose(state);
}

void Poll::OnClose(uv_handle_t* handle) {
  std::unique_ptr<PollState> state(static_cast<PollState*>(handle->data));
  // Also allowed when the hook never ran; afterwards the environment may end.
  napi_remove_async_cleanup_hook(state->hook);
}

void Poll::OnPoll(uv_poll_t* handle, int status, int events) {
  PollState* state = static_cast<PollState*>(handle->data);
  napi_env env = state->env;
  Napi::HandleScope scope(env);
  napi_value argv[4];
  if (status < 0) {
    argv[0] = SystemErrorValue(env, "uv_poll", status);
  } else {
    napi_get_null(env, &argv[0]);
  }
  napi_get_boolean(env, events & UV_READABLE, &argv[1]);
  napi_get_boolean(env, events & UV_WRITABLE, &argv[2]);
  napi_get_boolean(env, events & UV_DISCONNECT, &argv[3]);
  // Plain N-API rather than FunctionReference::MakeCallback: once a worker is
  // stopping (terminate(), or its own uncaught exception) events can still be
  // dispatched before the cleanup hook runs, napi_make_callback refuses to run
  // JS, and node-addon-api would turn that refusal into an abort.
  // MakeCallback (not a plain call) runs process.nextTick and microtasks after.
  napi_value result;
  if (napi_make_callback(env, nullptr, state->wrap->Value(), state->wrap->callback_.Value(), 4, argv, &result) !=
      napi_ok) {
    bool thrown = false;
    napi_value exception;
    // A throwing callback becomes 'uncaughtException', as for Node's handles.
    if (napi_is_exception_pending(env, &thrown) == napi_ok && thrown &&
        napi_get_and_clear_last_exception(env, &exception) == napi_ok) {
      napi_fatal_exception(env, exception);
    }
  }
}

}  // namespace

Napi::Function DefinePoll(Napi::Env env) { return Poll::Define(env); }
