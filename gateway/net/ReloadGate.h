#pragma once
// Coalesces reload requests (SIGHUP, a watched file changed). One reload runs at a time; a
// request that arrives while one runs is remembered, not dropped, and runs once after it:
// that reload may already have read the file before the change, so only a fresh one can be
// trusted to see it. Any number of requests during a reload make one more. Pure state, no
// loop: Gateway drives it on the main loop thread.

namespace moat::net {

class ReloadGate {
  public:
    // A reload is asked for. True: start it now. False: one is running; it runs again after.
    bool request() {
        if (running_) {
            pending_ = true;
            return false;
        }
        running_ = true;
        return true;
    }
    // The running reload is done (applied or failed). True: a request came meanwhile and
    // `stopping` is false: start the next one now (the gate stays running).
    bool finish(bool stopping) {
        const bool again = pending_ && !stopping;
        pending_ = false;
        running_ = again;
        return again;
    }
    bool running() const { return running_; }
    bool pending() const { return pending_; }

  private:
    bool running_ = false;
    bool pending_ = false;
};

}  // namespace moat::net
