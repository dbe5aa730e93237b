#pragma once
// `moat import`: a Mosquitto configuration (+ ACL file) → a Moat configuration, as YAML text
// with comments that say where each part came from and what could not be carried over.

#include <optional>
#include <string>
#include <vector>

#include "gateway/migrate/MosquittoConf.h"

namespace moat::migrate {

// `acl` is the parsed acl_file in force (nullopt: the broker had none, so every
// authenticated client could use every topic). Throws ImportError on what it cannot map.
std::string renderMoatConfig(const MosquittoConfig& conf, const std::optional<AclFile>& acl);

// The listeners Moat serves (TLS, or plaintext on a network address), by index; loopback
// plaintext listeners are the broker's side. WebSocket listeners are appended to `skipped`.
// Throws ImportError when none is left.
std::vector<size_t> servedListeners(const MosquittoConfig& conf, std::vector<Unmapped>* skipped);

// Reads mosquitto.conf (and the ACL file it names) and renders. Throws ImportError.
std::string importMosquitto(const std::string& confPath);

}  // namespace moat::migrate
