// DKIM micro-benchmarks: relaxed and simple body canonicalization + SHA-256
// fed in 16 KiB blocks (as the SMTP server streams DATA), raw SHA-256 on the
// same blocks as the in-process baseline, and signature verifications per
// second for rsa-2048 and ed25519 (the bare digest check, and a whole DKIM
// check of a small message without DNS). Compare with
// `openssl speed -bytes 16384 sha256` and `openssl speed rsa2048 ed25519`.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>

#include "auth/dkim.h"
#include "base/strings.h"

namespace {

using namespace tern::auth;

constexpr size_t kBlock = 16 * 1024;
constexpr size_t kBodySize = 4 * 1024 * 1024;

// Plain text mail: words, single spaces, ~72-octet lines, some blank lines,
// a little trailing whitespace, as typical bodies have.
const std::string& text_body() {
  static const std::string body = [] {
    std::mt19937 rng(1);
    const char* words[] = {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "message", "transfer",
                           "agent", "signature", "a", "of", "to", "canonicalization"};
    std::string b;
    b.reserve(kBodySize + 128);
    size_t line = 0;
    while (b.size() < kBodySize) {
      const char* w = words[rng() % 16];
      b += w;
      line += strlen(w);
      if (line > 68) {
        if (rng() % 16 == 0) b += "  ";
        b += "\r\n";
        if (rng() % 10 == 0) b += "\r\n";
        line = 0;
      } else {
        b += ' ';
        ++line;
      }
    }
    return b;
  }();
  return body;
}

void body_hash_bench(benchmark::State& state, dkim::Canon canon) {
  const std::string& body = text_body();
  for (auto _ : state) {
    dkim::BodyHasher h(canon);
    for (size_t pos = 0; pos < body.size(); pos += kBlock) {
      h.update(std::string_view(body).substr(pos, kBlock));
    }
    benchmark::DoNotOptimize(h.finish());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(body.size()));
}

void BM_RelaxedBodyHash16K(benchmark::State& state) { body_hash_bench(state, dkim::Canon::kRelaxed); }
void BM_SimpleBodyHash16K(benchmark::State& state) { body_hash_bench(state, dkim::Canon::kSimple); }

void BM_Sha256Only16K(benchmark::State& state) {
  const std::string& body = text_body();
  for (auto _ : state) {
    crypto::Sha256 sha;
    for (size_t pos = 0; pos < body.size(); pos += kBlock) sha.update(std::string_view(body).substr(pos, kBlock));
    benchmark::DoNotOptimize(sha.finish());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(body.size()));
}

void verify_digest_bench(benchmark::State& state, crypto::KeyType type) {
  auto key = crypto::PrivateKey::generate(type, 2048);
  std::string digest = crypto::sha256("header data");
  auto sig = key->sign_digest(digest);
  crypto::PublicKey pub = *crypto::PublicKey::from_dkim(type, [&] {
    std::string der;
    tern::base64_decode(key->dkim_public_value(), der);
    return der;
  }());
  for (auto _ : state) {
    bool ok = pub.verify_digest(digest, *sig);
    if (!ok) state.SkipWithError("verification failed");
    benchmark::DoNotOptimize(ok);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_VerifyRsa2048(benchmark::State& state) { verify_digest_bench(state, crypto::KeyType::kRsa); }
void BM_VerifyEd25519(benchmark::State& state) { verify_digest_bench(state, crypto::KeyType::kEd25519); }

// A message of the benchmarks: five header fields and `body_bytes` of text.
std::string bench_message(size_t body_bytes) {
  return "From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: benchmark\r\n"
         "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <1@example.com>\r\n\r\n" +
         text_body().substr(0, body_bytes);
}

dkim::SignOptions bench_sign_options(const crypto::PrivateKey& key) {
  dkim::SignOptions so;
  so.domain = "example.com";
  so.selector = "s";
  so.key = key;
  return so;
}

// A whole DKIM check (parse, body hash, header hash, key decode, verify) of a
// 2 KiB message, with the key record already fetched.
void dkim_message_bench(benchmark::State& state, crypto::KeyType type) {
  auto gen = dkim::keygen(type, 2048);
  std::string text = bench_message(2048);
  auto m = tern::mail::Message::parse(text);
  dkim::SignOptions so = bench_sign_options(gen->key);
  auto field = dkim::sign(*m, so);
  auto signed_message = tern::mail::Message::parse(*field + text);
  auto sig = dkim::parse_signature(signed_message->field(0).value);
  auto key = dkim::parse_key_record(gen->dns_txt);
  dkim::VerifyOptions vo;
  for (auto _ : state) {
    auto r = dkim::verify_with_key(*signed_message, 0, *sig, *key, vo);
    if (r.status != dkim::Outcome::kPass) state.SkipWithError("verification failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_DkimMessageRsa2048(benchmark::State& state) { dkim_message_bench(state, crypto::KeyType::kRsa); }
void BM_DkimMessageEd25519(benchmark::State& state) { dkim_message_bench(state, crypto::KeyType::kEd25519); }

// A whole DKIM signature (parse of the 4 KiB message, body and header hash,
// private-key operation), as tern makes one per outgoing message; compare
// with `openssl speed rsa2048` (sign) to see the cost beyond the RSA step.
void sign_message_bench(benchmark::State& state, crypto::KeyType type) {
  auto gen = dkim::keygen(type, 2048);
  std::string text = bench_message(4096);
  dkim::SignOptions so = bench_sign_options(gen->key);
  so.timestamp = 1700000000;
  for (auto _ : state) {
    auto m = tern::mail::Message::parse(text);
    auto field = dkim::sign(*m, so);
    if (!field) state.SkipWithError("signing failed");
    benchmark::DoNotOptimize(field);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_SignMessageRsa2048(benchmark::State& state) { sign_message_bench(state, crypto::KeyType::kRsa); }
void BM_SignMessageEd25519(benchmark::State& state) { sign_message_bench(state, crypto::KeyType::kEd25519); }

BENCHMARK(BM_Sha256Only16K);
BENCHMARK(BM_RelaxedBodyHash16K);
BENCHMARK(BM_SimpleBodyHash16K);
BENCHMARK(BM_VerifyRsa2048);
BENCHMARK(BM_VerifyEd25519);
BENCHMARK(BM_DkimMessageRsa2048);
BENCHMARK(BM_DkimMessageEd25519);
BENCHMARK(BM_SignMessageRsa2048);
BENCHMARK(BM_SignMessageEd25519);

}  // namespace

BENCHMARK_MAIN();
