// uv_poll on an fd, on the calling thread's own loop: readiness comes to JS
// as a callback, so nothing ever blocks or polls on a timer.
//
// The uv_poll_t lives in a heap PollHandle apart from the JS wrapper, so the
// two can go in either order: JS close() or garbage collection of the wrapper,
// or the environment's teardown (a worker thread exiting), which closes every
// open handle through an async cleanup hook so the loop can finish the close
// before Node checks that the loop is empty.
#include <uv.h>

#include "addon.h"
#include "errors.h"

namespace baton {

class Poll;

struct PollHandle {
  uv_poll_t poll;
  Poll* owner;
  napi_async_cleanup_hook_handle hook = nullptr;
  bool tearingDown = false;
};

class Poll : public Napi::ObjectWrap<Poll> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("Poll", DefineClass(env, "Poll",
                                    {InstanceMethod("start", &Poll::Start), InstanceMethod("stop", &Poll::Stop),
                                     InstanceMethod("close", &Poll::Close)}));
  }

  explicit Poll(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poll>(info) {
    Napi::Env env = info.Env();
    const int fd = IntArg(info, 0);
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "Poll(fd, callback)");
    uv_loop_t* loop;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no event loop");
    handle_ = new PollHandle{};
    handle_->owner = this;
    int err = uv_poll_init(loop, &handle_->poll, fd);
    if (err < 0) {
      delete handle_;
      handle_ = nullptr;
      throw SystemError(env, -err, "uv_poll_init");
    }
    handle_->poll.data = handle_;
    napi_add_async_cleanup_hook(env, OnTeardown, handle_, &handle_->hook);
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    Data(env).openPolls++;
  }

  ~Poll() override {
    if (handle_) Release();
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!handle_) throw Napi::Error::New(info.Env(), "Poll is closed");
    int events = UV_DISCONNECT;
    if (BoolArg(info, 0)) events |= UV_READABLE;
    if (BoolArg(info, 1)) events |= UV_WRITABLE;
    int err = uv_poll_start(&handle_->poll, events, OnEvent);
    if (err < 0) throw SystemError(info.Env(), -err, "uv_poll_start");
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (handle_) uv_poll_stop(&handle_->poll);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (handle_) Release();
    callback_.Reset();
    return info.Env().Undefined();
  }

  // JS is done with the handle: the teardown hook is no longer needed.
  void Release() {
    PollHandle* handle = handle_;
    handle_ = nullptr;
    handle->owner = nullptr;
    napi_remove_async_cleanup_hook(handle->hook);
    handle->hook = nullptr;
    Data(Env()).openPolls--;
    uv_poll_stop(&handle->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&handle->poll), OnClosed);
  }

  static void OnEvent(uv_poll_t* poll, int status, int events) {
    auto* handle = static_cast<PollHandle*>(poll->data);
    if (handle->owner && !handle->tearingDown) handle->owner->Dispatch(status, events);
  }

  void Dispatch(int status, int events) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Value error = status < 0 ? SystemError(env, -status, "uv_poll").Value() : env.Null();
    try {
      callback_.MakeCallback(Value(), {error, Napi::Boolean::New(env, events & UV_READABLE),
                                       Napi::Boolean::New(env, events & UV_WRITABLE),
                                       Napi::Boolean::New(env, events & UV_DISCONNECT)});
    } catch (const Napi::Error& e) {
      // A throwing callback is the application's uncaught exception, not a crash here.
      napi_fatal_exception(env, e.Value());
    }
  }

  // The environment is going away with the handle still open.
  static void OnTeardown(napi_async_cleanup_hook_handle hook, void* arg) {
    auto* handle = static_cast<PollHandle*>(arg);
    handle->tearingDown = true;
    handle->hook = hook;
    if (handle->owner) handle->owner->handle_ = nullptr;
    handle->owner = nullptr;
    uv_poll_stop(&handle->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&handle->poll), OnClosed);
  }

  static void OnClosed(uv_handle_t* poll) {
    auto* handle = static_cast<PollHandle*>(poll->data);
    if (handle->tearingDown) napi_remove_async_cleanup_hook(handle->hook);
    delete handle;
  }

  PollHandle* handle_ = nullptr;
  Napi::FunctionReference callback_;
};

static Napi::Value OpenHandles(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), Data(info.Env()).openPolls);
}

void InitPoll(Napi::Env env, Napi::Object exports) {
  Poll::Init(env, exports);
  exports.Set("openHandles", Napi::Function::New(env, OpenHandles, "openHandles"));
}

}  // namespace baton
