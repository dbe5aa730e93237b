#include "gateway/tls/TicketKeys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstring>

namespace moat::tls {

TicketKeys::TicketKeys(Clock::duration rotation) : rotation_(rotation) {
    valid_ = generate(current_);
}

TicketKeys::~TicketKeys() {
    OPENSSL_cleanse(&current_, sizeof current_);
    OPENSSL_cleanse(&previous_, sizeof previous_);
}

bool TicketKeys::generate(Key& key) {
    if (RAND_bytes(key.name, sizeof key.name) != 1 ||
        RAND_priv_bytes(key.aesKey, sizeof key.aesKey) != 1 ||
        RAND_priv_bytes(key.hmacKey, sizeof key.hmacKey) != 1) {
        return false;
    }
    key.created = Clock::now();
    return true;
}

void TicketKeys::rotate() {
    std::lock_guard lock(mutex_);
    rotateLocked(Clock::now());
}

void TicketKeys::rotateLocked(Clock::time_point now) {
    Key next{};
    if (!generate(next)) return;  // keep the current key rather than issue none
    next.created = now;
    previous_ = current_;
    hasPrevious_ = true;
    current_ = next;
    OPENSSL_cleanse(&next, sizeof next);
}

namespace {

bool setMacKey(EVP_MAC_CTX* mac, unsigned char* key, size_t len) {
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, len),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(mac, params) == 1;
}

}  // namespace

int TicketKeys::onTicket(unsigned char keyName[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                         EVP_MAC_CTX* mac, bool encrypt) {
    std::lock_guard lock(mutex_);
    if (!valid_) return -1;
    const Clock::time_point now = Clock::now();
    if (now - current_.created >= rotation_) rotateLocked(now);

    if (encrypt) {
        const int ivLen = EVP_CIPHER_get_iv_length(EVP_aes_256_cbc());
        if (RAND_bytes(iv, ivLen) != 1) return -1;
        std::memcpy(keyName, current_.name, sizeof current_.name);
        if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, current_.aesKey, iv) != 1 ||
            !setMacKey(mac, current_.hmacKey, sizeof current_.hmacKey)) {
            return -1;
        }
        return 1;
    }

    Key* key = nullptr;
    int result = 1;
    if (std::memcmp(keyName, current_.name, sizeof current_.name) == 0) {
        key = &current_;
    } else if (hasPrevious_ && now - previous_.created < 2 * rotation_ &&
               std::memcmp(keyName, previous_.name, sizeof previous_.name) == 0) {
        key = &previous_;
        result = 2;  // still valid, but re-issue under the current key
    }
    if (key == nullptr) return 0;
    if (!setMacKey(mac, key->hmacKey, sizeof key->hmacKey) ||
        EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aesKey, iv) != 1) {
        return -1;
    }
    return result;
}

}  // namespace moat::tls
