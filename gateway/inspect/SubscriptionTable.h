#pragma once
// The client's subscriptions as the broker will hold them once it has processed everything
// the gateway sent it, and the client's SUBSCRIBE / UNSUBSCRIBE packets awaiting an answer.
//
// Why "will hold" and not "has acknowledged": max_subscriptions must count a SUBSCRIBE the
// moment it is forwarded (else pipelined SUBSCRIBEs all pass before the first SUBACK), and a
// reload must see every filter the broker may hold, answered or not. The broker processes one
// connection's packets in order, so applying each packet when it is sent gives exactly the
// state the broker reaches; only a SUBACK refusing a filter corrects it afterwards.
//
// Packet ids: one SUBSCRIBE or UNSUBSCRIBE per id until its answer (MQTT-2.2.1-3); state per
// id is never overwritten (the caller refuses an id in use). Pure: no sockets, no clock.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace moat::inspect {

class SubscriptionTable {
  public:
    // Filters the broker holds or will hold (in flight included): what max_subscriptions counts.
    size_t size() const { return filters_.size(); }
    bool contains(const std::string& filter) const { return filters_.count(filter) != 0; }
    // The client has a SUBSCRIBE or UNSUBSCRIBE with this id awaiting its answer.
    bool idInUse(uint16_t id) const {
        return subscribes_.count(id) != 0 || unsubscribes_.count(id) != 0;
    }
    // Filter names held by SUBSCRIBEs awaiting their SUBACK (bounds the memory they pin).
    size_t pendingFilters() const { return pendingFilters_; }

    // The client's SUBSCRIBE `id` forwarded with `filters`, in the order the broker's SUBACK
    // codes will follow. The id must not be in use.
    void subscribeSent(uint16_t id, const std::vector<std::string>& filters);
    // Its SUBACK (`codes` as the broker sent them). False: no SUBSCRIBE awaits this id.
    bool subackReceived(uint16_t id, const std::vector<uint8_t>& codes);
    // The client's UNSUBSCRIBE `id`: the filters go now (the broker removes them before it
    // processes anything sent later).
    void unsubscribeSent(uint16_t id, const std::vector<std::string>& filters);
    // Its UNSUBACK. False: no client UNSUBSCRIBE awaits this id.
    bool unsubackReceived(uint16_t id) { return unsubscribes_.erase(id) != 0; }

    // Reload: removes and returns every filter (held or in flight) `allowed` refuses; the
    // caller unsubscribes them at the broker.
    std::vector<std::string> revoke(const std::function<bool(const std::string&)>& allowed);

    // A resumed session's filters, held by the broker from earlier connections (recorded when
    // they ended): counted like the ones this connection sends.
    void adopt(const std::vector<std::string>& filters);

    // The filters, in no particular order.
    std::vector<std::string> filters() const;

  private:
    struct Entry {
        uint64_t serial = 0;   // tells this entry from a later one of the same filter
        uint32_t pending = 0;  // SUBSCRIBEs in flight naming it
    };
    struct PendingFilter {
        std::string filter;
        uint64_t serial = 0;  // the entry it refers to
        bool added = false;   // this SUBSCRIBE created the entry (a refusal then undoes it)
    };

    std::unordered_map<std::string, Entry> filters_;
    std::unordered_map<uint16_t, std::vector<PendingFilter>> subscribes_;
    std::unordered_set<uint16_t> unsubscribes_;
    size_t pendingFilters_ = 0;
    uint64_t nextSerial_ = 1;
};

}  // namespace moat::inspect
