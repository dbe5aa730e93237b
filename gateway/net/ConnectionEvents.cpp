// ClientConnection as the pipeline's inspect::PipelineEvents: each event forwarded to the
// Gateway / Worker with this connection's listener, address and certificate.

#include "gateway/metrics/JsonEscape.h"
#include "gateway/net/ClientConnection.h"
#include "gateway/net/Gateway.h"
#include "gateway/net/Log.h"
#include "gateway/net/Worker.h"

namespace moat::net {

// ------------------------------------------------------------------ PipelineEvents

void ClientConnection::audit(const char* event, const char* action, std::string_view topic,
                             std::string_view rule, std::string_view reason,
                             std::optional<uint64_t> count) {
    worker_.gateway().audit(event, listener_.name, remote_, pipeline_->clientId(),
                            pipeline_->identity(), pipeline_->protocolName(), action, topic, rule,
                            reason, count);
}

void ClientConnection::warn(const std::string& message) {
    MOAT_LOG_WARN("%s: %s", remote_.c_str(), metrics::quoteForLog(message).c_str());
}

void ClientConnection::authzDenied(std::string_view action) {
    worker_.gateway().authzDenied(action);
}

void ClientConnection::rateLimited(std::string_view limit) {
    worker_.gateway().rateLimited(limit);
}

void ClientConnection::protocolError(std::string_view reason) {
    worker_.gateway().protocolError(reason);
}

void ClientConnection::authCounted(std::string_view method, bool success) {
    worker_.gateway().authCounted(method, success);
}

void ClientConnection::backendUnreachable() {
    worker_.gateway().setBackendReachable(false);
}

void ClientConnection::backendConnack(bool arrived) {
    if (arrived)
        worker_.gateway().backendConnackReceived();
    else
        worker_.gateway().backendConnackTimedOut();
}

bool ClientConnection::addressBanned() {
    return worker_.gateway().isIpBanned(ip_);
}

bool ClientConnection::identityBanned(const std::string& identity) {
    return worker_.gateway().isIdentityBanned(identity);
}

void ClientConnection::authFailed(std::string_view method, const std::string& identity) {
    worker_.gateway().authFailed(worker_, method, ip_, identity);
}

void ClientConnection::loggedIn(const std::string& identity) {
    worker_.gateway().loggedIn(identity, ip_);
}

void ClientConnection::deniedTopic(std::string_view topic) {
    deniedAny_ = true;
    Gateway& gw = worker_.gateway();
    if (auto a = gw.deniedTopic(id_, topic))
        gw.raiseAnomaly(*a, listener_.name, remote_, pipeline_->clientId(), pipeline_->identity());
}

void ClientConnection::publishAdmitted(uint64_t nowMs) {
    if (!publishBaseline_) return;
    const auto at = metrics::PublishBaseline::time_point(std::chrono::milliseconds(nowMs));
    if (auto a = publishBaseline_->onPublish(anomalySubject_, at))
        worker_.gateway().raiseAnomaly(*a, listener_.name, remote_, pipeline_->clientId(),
                                       pipeline_->identity());
}

void ClientConnection::shareKick(const std::string& identity, KickWhy why) {
    if (why == KickWhy::Revoked)
        worker_.gateway().shareKick(identity, certFingerprint(), cluster::KickReason::Revoked);
    else
        worker_.gateway().shareKick(identity, "", cluster::KickReason::NoRights);
}
inspect::OwnershipTable::Claim ClientConnection::claimClientId(const std::string& clientId,
                                                               const std::string& identity) {
    return worker_.gateway().claimClientId(clientId, identity);
}

void ClientConnection::releaseClientId(const std::string& clientId, const std::string& identity,
                                       std::optional<uint32_t> sessionExpiry,
                                       std::vector<std::string> subscriptions) {
    worker_.gateway().releaseClientId(clientId, identity, sessionExpiry, std::move(subscriptions));
}

void ClientConnection::clientIdRefused() {
    worker_.gateway().clientIdRefused();
}

}  // namespace moat::net
