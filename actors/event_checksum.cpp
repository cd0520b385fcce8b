// XXH3 over a stored event's or snapshot's fields; the hash is inlined, so only xxhash's header is needed.
#include "actors/event_checksum.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <array>
#include <cstring>

namespace cqrs {

namespace {

/// Collects the fields into one buffer, hashed at once: most events fit on the stack, and one call over a
/// contiguous buffer is several times faster for short inputs than XXH3's streaming interface.
class checksum_input {
public:
  void add(std::uint64_t value) noexcept {
    unsigned char bytes[8];
    for (int index = 0; index < 8; ++index)
      bytes[index] = static_cast<unsigned char>(value >> (8 * index)); // little-endian on every machine
    add_bytes(bytes, sizeof bytes);
  }

  void add(std::string_view text) noexcept {
    add(static_cast<std::uint64_t>(text.size()));
    add_bytes(text.data(), text.size());
  }

  std::uint64_t digest() noexcept {
    if (streaming_) {
      XXH3_64bits_update(&state_, buffer_.data(), used_);
      return XXH3_64bits_digest(&state_);
    }
    return XXH3_64bits(buffer_.data(), used_);
  }

private:
  void add_bytes(const void* bytes, std::size_t size) noexcept {
    if (used_ + size > buffer_.size()) {
      // Only long events stream (so only they pay for the state's reset): the result is the same as hashing all
      // bytes at once.
      if (!streaming_)
        XXH3_64bits_reset(&state_);
      streaming_ = true;
      XXH3_64bits_update(&state_, buffer_.data(), used_);
      used_ = 0;
      if (size > buffer_.size()) {
        XXH3_64bits_update(&state_, bytes, size);
        return;
      }
    }
    if (size > 0)
      std::memcpy(buffer_.data() + used_, bytes, size);
    used_ += size;
  }

  std::array<unsigned char, 1024> buffer_;
  std::size_t used_ = 0;
  bool streaming_ = false;
  XXH3_state_t state_;
};

} // namespace

std::uint64_t event_checksum(const stored_event_fields& event) noexcept {
  checksum_input input;
  input.add(event.position);
  input.add(event.stream_type);
  input.add(event.stream_id);
  input.add(event.version);
  input.add(event.type_name);
  input.add(static_cast<std::uint64_t>(event.timestamp));
  input.add(event.command_id);
  input.add(event.correlation_id);
  input.add(event.payload);
  return input.digest();
}

std::uint64_t snapshot_checksum(const stored_snapshot_fields& snapshot) noexcept {
  checksum_input input;
  input.add(snapshot.stream_type);
  input.add(snapshot.stream_id);
  input.add(snapshot.version);
  input.add(static_cast<std::uint64_t>(snapshot.format_version));
  input.add(snapshot.state);
  return input.digest();
}

} // namespace cqrs
