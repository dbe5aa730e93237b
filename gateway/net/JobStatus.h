#pragma once
// How a job on the AuthPool ended, as the pipeline's JobResult status and audit detail: one
// mapping for every kind of off-loop check (password, token).

#include <string>

#include "gateway/inspect/ConnectionPipeline.h"
#include "gateway/net/AuthPool.h"

namespace moat::net {

// `check` names the check in the audit reason ("password", "token"). verdictInResult: the job
// carries its own verdict (a token's), so every finished run is Ok here.
inline void setJobStatus(inspect::JobResult& out, AuthPool::Result r, const char* check,
                         bool verdictInResult) {
    using R = AuthPool::Result;
    using S = inspect::JobResult::Status;
    out.detail = AuthPool::resultName(r);
    switch (r) {
        case R::Ok:
            out.status = S::Ok;
            break;
        case R::BadPassword:
            out.status = verdictInResult ? S::Ok : S::BadPassword;
            break;
        case R::UnknownUser:
            out.status = verdictInResult ? S::Ok : S::UnknownUser;
            break;
        case R::Banned:
            out.status = S::Banned;
            out.detail = std::string("banned while the ") + check + " check waited";
            break;
        case R::Refused:
        case R::Evicted:
            out.status = S::QueueFull;
            break;
        case R::Expired:
        case R::Cancelled:
            out.status = S::Abandoned;
            break;
    }
}

}  // namespace moat::net
