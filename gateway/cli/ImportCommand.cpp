// `moat import --from mosquitto.conf`: prints a Moat configuration that means what the
// Mosquitto configuration (and its ACL file) meant; what has no equivalent is listed as
// comments at the top, never dropped silently. Exit 1 with FILE:LINE on what it cannot read.

#include <cstdio>
#include <iostream>

#include "gateway/cli/Commands.h"
#include "gateway/migrate/MoatImport.h"

namespace moat::cli {

int importCommand(const Args& args) {
    std::string from = flagValue(args, "--from");
    if (from.empty()) {
        for (const auto& a : args)
            if (a.rfind("--from=", 0) == 0) from = a.substr(7);
    }
    if (from.empty()) {
        std::fprintf(stderr, "usage: moat import --from mosquitto.conf  > moat.yaml\n");
        return 1;
    }
    try {
        std::cout << migrate::importMosquitto(from);
        std::cout.flush();
        return std::cout ? 0 : 1;
    } catch (const migrate::ImportError& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}

}  // namespace moat::cli
