// `git index-pack` of a received packfile held in memory: the same job as
// src/fetchers/git/index-pack.ts (which stays the reference and the fallback
// when this addon is not built), giving the same `.idx` bytes and the same
// verdicts. In JavaScript each of a pack's objects costs a zlib stream object,
// a hasher object and a few allocations (~35 µs an object: 0.6 s of a cold
// 1,500-commit fetch with 17,000 objects); here one z_stream is reset per
// entry and SHA-1 is OpenSSL's, both the copies that the Node.js binary itself
// links and exports to addons (zlib.h and openssl/ come with its headers).
//
// One pass inflates every entry (zlib reports the compressed bytes it used,
// which is where the next entry starts), takes the CRC32 of its raw bytes and
// the SHA-1 of each whole object; then deltas are resolved (OFS_DELTA bases
// lie earlier in the pack; REF_DELTA bases anywhere in it, or outside it, in
// the repository: a thin pack, through the `external` callback), with
// resolved bases in a 64 MiB LRU, and inflated payloads kept from the first
// pass up to 128 MiB (the rest is inflated again when needed).
//
// JavaScript API (src/native/index.ts, used by src/fetchers/git/index-pack.ts and pack.ts):
//   indexGitPack(pack: Buffer, external: (hexId) => { type: string, data: Uint8Array } | undefined)
//     -> { idx: Buffer, commits: (string | Buffer)[] }   commits: id, data, id, data, ...
// A corrupt pack throws an Error with code ERR_GIT_PACK (or ERR_GIT_DELTA for
// a bad delta) and a one-line reason; an exception from `external` propagates.
//   inflateExact(data: Uint8Array, size: number) -> Buffer | undefined
// The zlib stream at the start of `data`, inflated, when it is exactly `size`
// bytes (else undefined): reading an object from a pack (pack.ts), without the
// stream object node:zlib makes per call (one z_stream per thread, reset).

#define NAPI_VERSION 8
#include <node_api.h>

// Node's own headers carry zlib.h and openssl/. A build of Node.js that ships
// without them still gets the rest of the addon (the NAR dump): these
// functions are then not registered and fetch-cache uses its JavaScript.
#if !defined(FETCH_CACHE_NO_GIT_PACK) && __has_include(<zlib.h>) && __has_include(<openssl/sha.h>)
#define FETCH_CACHE_GIT_PACK 1
#endif

#ifdef FETCH_CACHE_GIT_PACK
#include <openssl/sha.h>
#include <zlib.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

constexpr int OFS_DELTA = 6;
constexpr int REF_DELTA = 7;
constexpr size_t MAX_CHAIN = 10000;
constexpr size_t CACHE_BYTES = 64u << 20;
constexpr size_t KEEP_BYTES = 128u << 20;
const char* const TYPE_NAMES[] = {"", "commit", "tree", "blob", "tag"};

using Bytes = std::shared_ptr<std::vector<uint8_t>>;

struct Obj {
  int type = 0;  // 1-4
  Bytes data;
};

struct Entry {
  uint64_t offset = 0;
  int kind = 0;
  uint64_t size = 0;
  uint64_t dataAt = 0;
  uint32_t crc = 0;
  size_t baseIndex = 0;  // OFS_DELTA: the entry its base is
  uint8_t baseId[20];    // REF_DELTA
  bool hasId = false;
  uint8_t id[20];
  int type = 0;
  Bytes kept;  // the inflated payload from the first pass, while it is needed
};

std::string Hex(const uint8_t* id) {
  static const char* digits = "0123456789abcdef";
  std::string s(40, '0');
  for (int i = 0; i < 20; i++) {
    s[2 * i] = digits[id[i] >> 4];
    s[2 * i + 1] = digits[id[i] & 15];
  }
  return s;
}

void ObjectId(int type, const uint8_t* data, size_t len, uint8_t* out) {
  char head[48];
  int n = snprintf(head, sizeof head, "%s %zu", TYPE_NAMES[type], len);
  SHA_CTX c;
  SHA1_Init(&c);
  SHA1_Update(&c, head, static_cast<size_t>(n) + 1);  // with the NUL
  SHA1_Update(&c, data, len);
  SHA1_Final(out, &c);
}

// Resolved objects by entry, the oldest evicted past the budget (a vector slot per entry and a
// queue: no node allocated per object, which an LRU's map and list cost here).
class Cache {
 public:
  explicit Cache(size_t n) : slots_(n) {}
  bool Get(size_t i, Obj& out) const {
    if (!slots_[i].data) return false;
    out = slots_[i];
    return true;
  }
  void Put(size_t i, const Obj& obj) {
    size_t size = obj.data->size();
    if (size > CACHE_BYTES || slots_[i].data) return;
    slots_[i] = obj;
    order_.push_back(i);
    bytes_ += size;
    while (bytes_ > CACHE_BYTES) {
      size_t old = order_[head_++];
      bytes_ -= slots_[old].data->size();
      slots_[old] = Obj();
    }
    if (head_ > 4096 && head_ * 2 > order_.size()) {
      order_.erase(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }

 private:
  std::vector<Obj> slots_;
  std::vector<size_t> order_;
  size_t head_ = 0;
  size_t bytes_ = 0;
};

// A 20-byte object id as a hash key, without a heap allocation.
struct Id {
  uint8_t b[20];
  bool operator==(const Id& o) const { return memcmp(b, o.b, 20) == 0; }
};
struct IdHash {
  size_t operator()(const Id& id) const {
    size_t h;
    memcpy(&h, id.b, sizeof h);  // SHA-1 bytes are uniform
    return h;
  }
};
Id IdOf(const uint8_t* b) {
  Id id;
  memcpy(id.b, b, 20);
  return id;
}

// zlib cannot expand more than ~1032:1, so a larger declared size is a lie (and not worth allocating);
// avail_out is 32 bits.
bool CanInflateTo(uint64_t size, uint64_t avail) { return size <= avail * 1100 + 64 && size <= 0xffffffffu; }

enum class Inflated { kOk, kCorrupt, kWrongSize };

// Inflates the zlib stream at the start of in[0, avail) into out[0, size) (callers check CanInflateTo
// first). kOk: it is exactly `size` bytes, and *used is the compressed bytes it took (where the next
// pack entry starts). kWrongSize: it is *produced bytes instead. kCorrupt: it does not inflate.
Inflated InflateExactly(z_stream& zs, const uint8_t* in, uint64_t avail, uint8_t* out, uint64_t size,
                        uint64_t* used, uint64_t* produced) {
  inflateReset(&zs);
  const uint64_t piece = 1u << 30;  // avail_in is 32 bits too
  uint64_t fed = std::min(avail, piece);
  zs.next_in = const_cast<Bytef*>(in);
  zs.avail_in = static_cast<uInt>(fed);
  uint8_t scratch[4096];  // output past `size`, only counted
  // An empty object starts in the scratch buffer: zlib refuses a null next_out.
  bool over = size == 0;
  zs.next_out = over ? scratch : out;
  zs.avail_out = over ? static_cast<uInt>(sizeof scratch) : static_cast<uInt>(size);
  uint64_t extra = 0;
  for (;;) {
    int r = inflate(&zs, Z_NO_FLUSH);
    if (r == Z_STREAM_END) break;
    if (r != Z_OK && r != Z_BUF_ERROR) return Inflated::kCorrupt;
    if (zs.avail_out == 0) {
      if (over) extra += sizeof scratch;
      over = true;
      zs.next_out = scratch;
      zs.avail_out = sizeof scratch;
      continue;
    }
    if (zs.avail_in == 0 && fed < avail) {
      uint64_t more = std::min(avail - fed, piece);
      zs.avail_in = static_cast<uInt>(more);
      fed += more;
      continue;
    }
    if (r == Z_BUF_ERROR || zs.avail_in == 0) return Inflated::kCorrupt;
  }
  *produced = over ? size + extra + (sizeof scratch - zs.avail_out) : size - zs.avail_out;
  *used = zs.total_in;
  return *produced == size ? Inflated::kOk : Inflated::kWrongSize;
}

class Indexer {
 public:
  Indexer(napi_env env, const uint8_t* pack, size_t len, napi_value external)
      : env_(env), pack_(pack), len_(len), external_(external) {
    memset(&zs_, 0, sizeof zs_);
    zlibOk_ = inflateInit(&zs_) == Z_OK;
  }
  ~Indexer() {
    if (zlibOk_) inflateEnd(&zs_);
  }

  std::string error;       // set on a corrupt pack
  bool deltaError = false;  // the error is a bad delta
  bool jsError = false;     // `external` threw: leave its exception pending
  std::vector<std::pair<std::string, Bytes>> commits;

  napi_value Run() {
    if (!zlibOk_) return Fail("zlib did not initialise");
    if (len_ < 32 || memcmp(pack_, "PACK", 4) != 0) return Fail("no PACK header");
    uint32_t version = Be32(pack_ + 4);
    if (version != 2 && version != 3) return Fail("version " + std::to_string(version));
    uint32_t count = Be32(pack_ + 8);
    end_ = len_ - 20;
    uint8_t sum[20];
    SHA1(pack_, end_, sum);
    if (memcmp(sum, pack_ + end_, 20) != 0) return Fail("its checksum does not match");

    entries_.reserve(std::min<uint64_t>(count, end_ / 2));
    size_t keptBytes = 0;
    uint64_t p = 12;
    for (uint32_t i = 0; i < count; i++) {
      if (p >= end_) return Fail("it ends after " + std::to_string(i) + " of " + std::to_string(count) + " objects");
      Entry e;
      e.offset = p;
      uint64_t baseRel = 0;
      if (!Header(p, e, baseRel)) return Fail("truncated entry header");
      if (e.kind == OFS_DELTA) {
        uint64_t baseOffset = e.offset - baseRel;
        size_t at = FindOffset(baseOffset);
        if (baseRel > e.offset || baseOffset < 12 || at == SIZE_MAX)
          return Fail("delta at " + std::to_string(e.offset) + " has no base at " +
                      std::to_string(static_cast<int64_t>(e.offset - baseRel)));
        e.baseIndex = at;
      } else if (e.kind != REF_DELTA && (e.kind < 1 || e.kind > 4)) {
        return Fail("unknown entry type " + std::to_string(e.kind) + " at " + std::to_string(e.offset));
      }
      Bytes data = std::make_shared<std::vector<uint8_t>>();
      uint64_t used = 0;
      if (!Inflate(e, *data, &used)) return nullptr;
      p = e.dataAt + used;
      e.crc = static_cast<uint32_t>(crc32(0L, pack_ + e.offset, static_cast<uInt>(p - e.offset)));
      if (e.kind <= 4) {
        e.type = e.kind;
        ObjectId(e.type, data->data(), data->size(), e.id);
        e.hasId = true;
        if (e.type == 1) commits.emplace_back(Hex(e.id), data);
      }
      if (keptBytes + data->size() <= KEEP_BYTES) {
        keptBytes += data->size();
        e.kept = std::move(data);
      }
      entries_.push_back(std::move(e));
    }
    if (p != end_) return Fail(std::to_string(end_ - p) + " bytes after the last object");
    cache_ = Cache(entries_.size());
    byId_.reserve(entries_.size());

    for (size_t i = 0; i < entries_.size(); i++)
      if (entries_[i].hasId) byId_.emplace(IdOf(entries_[i].id), i);
    std::vector<size_t> pending;
    for (size_t i = 0; i < entries_.size(); i++)
      if (!entries_[i].hasId) pending.push_back(i);
    while (!pending.empty()) {
      std::vector<size_t> later;
      for (size_t i : pending) {
        Obj obj;
        int r = ObjectAt(i, obj);
        if (r < 0) return nullptr;
        if (r == 0) {
          later.push_back(i);
          continue;
        }
        Entry& e = entries_[i];
        e.type = obj.type;
        ObjectId(obj.type, obj.data->data(), obj.data->size(), e.id);
        e.hasId = true;
        e.kept.reset();
        byId_.emplace(IdOf(e.id), i);
        if (obj.type == 1) commits.emplace_back(Hex(e.id), obj.data);
      }
      if (later.size() == pending.size())
        return Fail("missing delta base " + Hex(entries_[later[0]].baseId));
      pending.swap(later);
    }
    return WriteIndex();
  }

 private:
  napi_env env_;
  const uint8_t* pack_;
  size_t len_;
  uint64_t end_ = 0;
  napi_value external_;
  z_stream zs_;
  bool zlibOk_;
  std::vector<Entry> entries_;
  std::unordered_map<Id, size_t, IdHash> byId_;
  Cache cache_{0};

  static uint32_t Be32(const uint8_t* b) {
    return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
  }

  napi_value Fail(const std::string& why, bool delta = false) {
    if (error.empty()) {
      error = why;
      deltaError = delta;
    }
    return nullptr;
  }

  size_t FindOffset(uint64_t offset) const {
    auto it = std::lower_bound(entries_.begin(), entries_.end(), offset,
                               [](const Entry& e, uint64_t o) { return e.offset < o; });
    return it != entries_.end() && it->offset == offset ? static_cast<size_t>(it - entries_.begin()) : SIZE_MAX;
  }

  // The entry header at p (as entryHeader in pack.ts); p moves to the zlib data.
  bool Header(uint64_t& p, Entry& e, uint64_t& baseRel) {
    if (p >= end_) return false;
    uint8_t c = pack_[p++];
    e.kind = (c >> 4) & 7;
    uint64_t size = c & 15;
    int shift = 4;
    while (c & 0x80) {
      if (p >= end_ || shift > 57) return false;
      c = pack_[p++];
      size += uint64_t(c & 0x7f) << shift;
      shift += 7;
    }
    e.size = size;
    if (e.kind == OFS_DELTA) {
      if (p >= end_) return false;
      c = pack_[p++];
      baseRel = c & 0x7f;
      while (c & 0x80) {
        if (p >= end_ || baseRel > (UINT64_MAX >> 8)) return false;
        c = pack_[p++];
        baseRel = ((baseRel + 1) << 7) + (c & 0x7f);
      }
    } else if (e.kind == REF_DELTA) {
      if (p + 20 > end_) return false;
      memcpy(e.baseId, pack_ + p, 20);
      p += 20;
    }
    e.dataAt = p;
    return true;
  }

  // Inflates the entry's zlib data into `out` (exactly e.size bytes, or a corrupt-pack failure).
  bool Inflate(const Entry& e, std::vector<uint8_t>& out, uint64_t* used) {
    const uint64_t avail = end_ - e.dataAt;
    // The message prefix only when an entry fails: this runs once per object.
    auto at = [&e] { return "entry at " + std::to_string(e.offset); };
    if (!CanInflateTo(e.size, avail)) return Fail(at() + " does not inflate"), false;
    out.resize(e.size);
    uint64_t produced = 0;
    switch (InflateExactly(zs_, pack_ + e.dataAt, avail, out.data(), e.size, used, &produced)) {
      case Inflated::kOk:
        return true;
      case Inflated::kWrongSize:
        return Fail(at() + " inflates to " + std::to_string(produced) + " bytes, not " + std::to_string(e.size)), false;
      default:
        return Fail(at() + " does not inflate"), false;
    }
  }

  Bytes Payload(Entry& e) {
    if (e.kept) return e.kept;
    Bytes data = std::make_shared<std::vector<uint8_t>>();
    uint64_t used;
    if (!Inflate(e, *data, &used)) return nullptr;
    return data;
  }

  static bool Varint(const std::vector<uint8_t>& d, size_t& p, uint64_t& n) {
    n = 0;
    int shift = 0;
    uint8_t c;
    do {
      if (p >= d.size() || shift > 63) return false;
      c = d[p++];
      n |= uint64_t(c & 0x7f) << shift;
      shift += 7;
    } while (c & 0x80);
    return true;
  }

  // As applyDelta in pack.ts.
  Bytes ApplyDelta(const std::vector<uint8_t>& base, const std::vector<uint8_t>& delta) {
    size_t p = 0;
    uint64_t baseSize, outSize;
    if (!Varint(delta, p, baseSize) || baseSize != base.size()) {
      Fail("delta base size mismatch", true);
      return nullptr;
    }
    if (!Varint(delta, p, outSize) || outSize > (uint64_t(1) << 32)) {
      Fail("delta result size mismatch", true);
      return nullptr;
    }
    Bytes out = std::make_shared<std::vector<uint8_t>>();
    out->resize(outSize);
    uint8_t* o = out->data();
    uint64_t at = 0;
    while (p < delta.size()) {
      uint8_t op = delta[p++];
      if (op & 0x80) {
        uint64_t off = 0, len = 0;
        for (int b = 0; b < 4; b++)
          if (op & (1 << b)) {
            if (p >= delta.size()) return Fail("delta copy out of range", true), nullptr;
            off |= uint64_t(delta[p++]) << (8 * b);
          }
        for (int b = 0; b < 3; b++)
          if (op & (16 << b)) {
            if (p >= delta.size()) return Fail("delta copy out of range", true), nullptr;
            len |= uint64_t(delta[p++]) << (8 * b);
          }
        if (len == 0) len = 0x10000;
        if (off + len > base.size() || at + len > outSize) return Fail("delta copy out of range", true), nullptr;
        memcpy(o + at, base.data() + off, len);
        at += len;
      } else if (op > 0) {
        if (at + op > outSize || p + op > delta.size()) return Fail("delta insert out of range", true), nullptr;
        memcpy(o + at, delta.data() + p, op);
        at += op;
        p += op;
      } else {
        return Fail("delta opcode 0", true), nullptr;
      }
    }
    if (at != outSize) return Fail("delta result size mismatch", true), nullptr;
    return out;
  }

  // The object outside the pack with this id, from `external`: 1 found, 0 not, -1 a JS exception.
  int External(const uint8_t* id, Obj& out) {
    napi_handle_scope scope;
    if (napi_open_handle_scope(env_, &scope) != napi_ok) return -1;
    int result = -1;
    napi_value hex, global, ret;
    std::string h = Hex(id);
    bool ok = napi_create_string_latin1(env_, h.data(), h.size(), &hex) == napi_ok &&
              napi_get_global(env_, &global) == napi_ok &&
              napi_call_function(env_, global, external_, 1, &hex, &ret) == napi_ok;
    if (!ok) {
      jsError = true;
    } else {
      napi_valuetype t;
      napi_typeof(env_, ret, &t);
      if (t != napi_object) {
        result = 0;
      } else {
        napi_value type, data;
        char name[16] = {0};
        size_t n = 0;
        void* bytes = nullptr;
        size_t len = 0;
        bool isTyped = false;
        napi_get_named_property(env_, ret, "type", &type);
        napi_get_named_property(env_, ret, "data", &data);
        napi_get_value_string_latin1(env_, type, name, sizeof name, &n);
        napi_is_typedarray(env_, data, &isTyped);
        if (isTyped) {
          napi_typedarray_type tt;
          size_t length, offset;
          napi_value ab;
          napi_get_typedarray_info(env_, data, &tt, &length, &bytes, &ab, &offset);
          len = length;
        }
        int kind = 0;
        for (int k = 1; k <= 4; k++)
          if (strcmp(name, TYPE_NAMES[k]) == 0) kind = k;
        if (kind == 0 || !isTyped) {
          result = 0;
        } else {
          out.type = kind;
          const uint8_t* b = static_cast<const uint8_t*>(bytes);
          out.data = std::make_shared<std::vector<uint8_t>>(b, b + len);
          result = 1;
        }
      }
    }
    napi_close_handle_scope(env_, scope);
    if (result < 0) jsError = true;
    return result;
  }

  // Entry i as a whole object: 1 done, 0 a REF_DELTA base is missing (try again later), -1 failed.
  int ObjectAt(size_t i, Obj& out) {
    std::vector<size_t> chain;
    size_t cur = i;
    Obj base;
    for (size_t depth = 0;; depth++) {
      if (depth > MAX_CHAIN) return Fail("delta chain too long"), -1;
      Entry& e = entries_[cur];
      if (cache_.Get(cur, base)) break;
      if (e.kind <= 4) {
        base.type = e.kind;
        base.data = Payload(e);
        if (!base.data) return -1;
        cache_.Put(cur, base);
        break;
      }
      chain.push_back(cur);
      if (e.kind == OFS_DELTA) {
        cur = e.baseIndex;
        continue;
      }
      auto it = byId_.find(IdOf(e.baseId));
      if (it != byId_.end()) {
        cur = it->second;
        continue;
      }
      int r = External(e.baseId, base);
      if (r <= 0) return r;
      break;
    }
    for (size_t k = chain.size(); k-- > 0;) {
      Entry& d = entries_[chain[k]];
      Bytes delta = Payload(d);
      if (!delta) return -1;
      Obj r;
      r.type = base.type;
      r.data = ApplyDelta(*base.data, *delta);
      if (!r.data) return -1;
      cache_.Put(chain[k], r);
      base = r;
    }
    out = base;
    return 1;
  }

  napi_value WriteIndex() {
    size_t n = entries_.size();
    std::vector<uint32_t> order(n);
    for (size_t i = 0; i < n; i++) order[i] = static_cast<uint32_t>(i);
    std::sort(order.begin(), order.end(),
              [this](uint32_t a, uint32_t b) { return memcmp(entries_[a].id, entries_[b].id, 20) < 0; });
    for (size_t i = 1; i < n; i++)
      if (memcmp(entries_[order[i]].id, entries_[order[i - 1]].id, 20) == 0)
        return Fail("object " + Hex(entries_[order[i]].id) + " appears twice");
    size_t big = 0;
    for (const Entry& e : entries_)
      if (e.offset >= 0x80000000u) big++;
    size_t total = 8 + 1024 + n * 28 + big * 8 + 40;
    void* raw;
    napi_value buffer;
    if (napi_create_buffer(env_, total, &raw, &buffer) != napi_ok) return nullptr;
    uint8_t* out = static_cast<uint8_t*>(raw);
    memset(out, 0, total);
    auto put32 = [](uint8_t* b, uint32_t v) {
      b[0] = v >> 24;
      b[1] = v >> 16;
      b[2] = v >> 8;
      b[3] = v;
    };
    put32(out, 0xff744f63);
    put32(out + 4, 2);
    size_t idsAt = 8 + 1024, crcAt = idsAt + n * 20, offAt = crcAt + n * 4, bigAt = offAt + n * 4;
    uint32_t bigUsed = 0;
    for (size_t i = 0; i < n; i++) {
      const Entry& e = entries_[order[i]];
      memcpy(out + idsAt + i * 20, e.id, 20);
      put32(out + crcAt + i * 4, e.crc);
      if (e.offset < 0x80000000u) {
        put32(out + offAt + i * 4, static_cast<uint32_t>(e.offset));
      } else {
        put32(out + offAt + i * 4, 0x80000000u | bigUsed);
        put32(out + bigAt + bigUsed * 8, static_cast<uint32_t>(e.offset >> 32));
        put32(out + bigAt + bigUsed * 8 + 4, static_cast<uint32_t>(e.offset));
        bigUsed++;
      }
    }
    size_t at = 0;
    for (int b = 0; b < 256; b++) {
      while (at < n && out[idsAt + at * 20] <= b) at++;
      put32(out + 8 + b * 4, static_cast<uint32_t>(at));
    }
    size_t sumAt = bigAt + big * 8;
    memcpy(out + sumAt, pack_ + end_, 20);
    SHA1(out, sumAt + 20, out + sumAt + 20);
    return buffer;
  }
};

napi_value ThrowPackError(napi_env env, const Indexer& ix) {
  napi_value code, msg, err;
  const char* c = ix.deltaError ? "ERR_GIT_DELTA" : "ERR_GIT_PACK";
  napi_create_string_utf8(env, c, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, ix.error.c_str(), ix.error.size(), &msg);
  napi_create_error(env, code, msg, &err);
  napi_throw(env, err);
  return nullptr;
}

}  // namespace

namespace {

struct ThreadInflater {
  z_stream zs;
  bool ok;
  ThreadInflater() {
    memset(&zs, 0, sizeof zs);
    ok = inflateInit(&zs) == Z_OK;
  }
  ~ThreadInflater() {
    if (ok) inflateEnd(&zs);
  }
};

}  // namespace

napi_value InflateExact(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_value undef;
  napi_get_undefined(env, &undef);
  bool isTyped = false;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2 ||
      napi_is_typedarray(env, argv[0], &isTyped) != napi_ok || !isTyped) {
    napi_throw_type_error(env, "ERR_NATIVE", "inflateExact(data: Uint8Array, size: number)");
    return nullptr;
  }
  napi_typedarray_type tt;
  size_t len, offset;
  void* data;
  napi_value ab;
  double want;
  napi_get_typedarray_info(env, argv[0], &tt, &len, &data, &ab, &offset);
  if (napi_get_value_double(env, argv[1], &want) != napi_ok || !(want >= 0) || want > 4294967295.0) return undef;
  const uint64_t size = static_cast<uint64_t>(want);
  if (!CanInflateTo(size, len)) return undef;
  thread_local ThreadInflater t;
  if (!t.ok) return undef;
  void* out;
  napi_value buffer;
  if (napi_create_buffer(env, size, &out, &buffer) != napi_ok) return nullptr;
  uint64_t used, produced;
  if (InflateExactly(t.zs, static_cast<const uint8_t*>(data), len, static_cast<uint8_t*>(out), size, &used,
                     &produced) != Inflated::kOk)
    return undef;  // corrupt, or not `size` bytes: node:zlib says which
  return buffer;
}

napi_value IndexGitPack(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) {
    napi_throw_type_error(env, "ERR_NATIVE", "indexGitPack(pack, external)");
    return nullptr;
  }
  bool isBuffer = false;
  napi_is_buffer(env, argv[0], &isBuffer);
  if (!isBuffer) {
    napi_throw_type_error(env, "ERR_NATIVE", "indexGitPack: pack must be a Buffer");
    return nullptr;
  }
  void* data;
  size_t len;
  napi_get_buffer_info(env, argv[0], &data, &len);
  Indexer ix(env, static_cast<const uint8_t*>(data), len, argv[1]);
  napi_value idx = ix.Run();
  if (ix.jsError) return nullptr;  // the callback's exception is pending
  if (idx == nullptr) {
    if (!ix.error.empty()) return ThrowPackError(env, ix);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, "ERR_NATIVE", "indexGitPack failed");
    return nullptr;
  }
  napi_value result, commits;
  napi_create_object(env, &result);
  napi_create_array_with_length(env, ix.commits.size() * 2, &commits);
  uint32_t k = 0;
  for (const auto& c : ix.commits) {
    napi_value id, bytes;
    void* dst;
    napi_create_string_latin1(env, c.first.data(), c.first.size(), &id);
    napi_create_buffer_copy(env, c.second->size(), c.second->data(), &dst, &bytes);
    napi_set_element(env, commits, k++, id);
    napi_set_element(env, commits, k++, bytes);
  }
  napi_set_named_property(env, result, "idx", idx);
  napi_set_named_property(env, result, "commits", commits);
  return result;
}

namespace {
void Define(napi_env env, napi_value exports, const char* name, napi_callback fn) {
  napi_value f;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, nullptr, &f) == napi_ok)
    napi_set_named_property(env, exports, name, f);
}
}  // namespace

void RegisterGitPack(napi_env env, napi_value exports) {
  Define(env, exports, "indexGitPack", IndexGitPack);
  Define(env, exports, "inflateExact", InflateExact);
}

#else  // no zlib or OpenSSL headers

void RegisterGitPack(napi_env, napi_value) {}

#endif
