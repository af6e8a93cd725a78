// policy: PolicySpec -> one Hyperscan database per tenant, cached on disk.
#pragma once

#include <hs/hs.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "policy/masked_terms.h"
#include "policy/template_starts.h"
#include "policy/policy.h"

namespace civicsift {

// Where a pattern matches: the comment's raw bytes or its skeleton (text/skeleton.h).
enum class View : uint8_t { raw, skeleton };
enum class PatternKind : uint8_t { term, allow, regex };

// A pattern's lists live in its policy's shared pools (PatternIndex), not in vectors of
// their own: ~3,500 patterns per tenant would otherwise cost as many allocations to
// build and to free, and scatter what a scan reads.
struct PatternMeta {
  View view = View::raw;
  PatternKind kind = PatternKind::regex;
  bool anchor_end = false;     // regex ended with '$': match must end the comment
  uint16_t rule_count = 0;     // rules this pattern fires (term, regex) or protects (allow),
  uint32_t rules_begin = 0;    //   in PatternIndex::rules
  uint32_t length = 0;         // skeleton literals: bytes, framing spaces included; 0: variable
  uint32_t profile_begin = 0;  // skeleton term literals: `length` least run lengths, one per
                               //   byte, in PatternIndex::run_profiles
  uint32_t template_index = 0;  // term templates: in PatternIndex::templates
};

struct PatternIndex {
  std::vector<PatternMeta> patterns;  // by Hyperscan id
  std::vector<uint16_t> rules;
  std::vector<uint16_t> run_profiles;
  std::vector<TemplateStarts> templates;  // of the term templates, by PatternMeta::template_index
  MaskedTerms masked;  // masked spellings of single-word terms, matched after the scan
  // Every word of the policy's terms (rule 0 for all): a masked word of a phrase ("I'll
  // k*ll you") is read as the one of these it spells, and that skeleton scanned again.
  MaskedTerms vocabulary;
};

// Masked spellings of terms ("f*ck") are looked up after the scan in the policy's
// MaskedTerms; policy_expressions() lists them as literals for engines without that step.
enum class MaskedSpellings : uint8_t { looked_up, literals };

// A database Hyperscan allocated (compiled, or deserialised when small) or one
// deserialised into memory civicsift mapped itself (`mapped_bytes`, compiler.cpp).
struct HsDatabaseDeleter {
  size_t mapped_bytes = 0;
  void operator()(hs_database_t* db) const;
};

using HsDatabase = std::unique_ptr<hs_database_t, HsDatabaseDeleter>;

// A tenant's patterns compile to up to five databases with one id space (PatternMeta
// index): the raw-text regexes that cannot match without an ASCII digit
// (policy/regex_digits.h) go to `digits`, scanned over the raw text of comments that
// hold a digit; allow phrases go to `allows`, scanned over the skeleton only when a
// rule they protect matched; all other patterns go to `main`, scanned over every
// comment's text and skeleton.
// `main` and `digits` are built without Hyperscan's start-of-match tracking, which
// cost 35-45% of their scan time. A literal's start is its end less its length, a
// term template's is read back from its end (policy/template_starts.h); the raw-text
// regexes (needs_start_of_match) are compiled again, with it, into `main_starts`,
// scanned over the raw text of comments where the first scan found one of them.
// `digits` only tells whether any of its regexes matches at all; `digit_starts` holds
// them all with their starts.
// Which database a pattern compiles into (their cache files' names follow it).
enum class DatabasePart : uint8_t { main, digits, allows, main_starts, digit_starts };
constexpr size_t kDatabaseParts = 5;

// An allow phrase's literal or regex: it goes to PolicyDatabases::allows.
inline bool is_allow_pattern(const PatternMeta& p) {
  return p.kind == PatternKind::allow;
}

// A term template: where its match starts is read back from its end (TemplateStarts).
inline bool is_term_template(const PatternMeta& p) {
  return p.kind == PatternKind::term && p.view == View::skeleton && p.length == 0;
}

// A pattern whose match's start comes from Hyperscan: a regex, or an allow template
// (a literal's start is its end less its length, a term template's is read back).
inline bool needs_start_of_match(const PatternMeta& p) {
  return p.length == 0 && !is_term_template(p);
}

// Null where a policy has nothing for a part: no patterns at all (only duplicate-post
// rules), no regex that needs a digit, no allow phrases, no pattern of variable length.
struct PolicyDatabases {
  std::array<HsDatabase, kDatabaseParts> parts;
  HsDatabase& operator[](DatabasePart p) { return parts[static_cast<size_t>(p)]; }
  const hs_database_t* get(DatabasePart p) const { return parts[static_cast<size_t>(p)].get(); }
  size_t bytes() const;  // all of them
};

// How a policy came to be: compiled from its files, built from them with its databases
// from the compile cache, or restored from its snapshot (policy/snapshot.h).
enum class PolicySource : uint8_t { compiled, cached_databases, snapshot };

struct CompileOptions {
  std::filesystem::path cache_dir;  // empty: always compile, never write
};

// The databases of several tenants (a PolicySet) as one of each part: the tenants of a
// deployment share most of their patterns (the lexicons: five packs' 14,179 main
// expressions are 3,361 distinct), and their databases scanned in turn competed for
// the cache. Ids are the shared databases' own, one space over all parts; each tenant
// maps them to its patterns (CompiledPolicy::shared_ids).
struct SharedDatabases {
  PolicyDatabases dbs;
  uint64_t key = 0;  // names them in the compile cache: <key>.shared.hsdb (and parts), <key>.shared.ids
  PolicySource source = PolicySource::compiled;  // compiled or cached_databases
};

class CompiledPolicy;
// Gives the policies (of one set, none sharing yet) the databases of all of them in
// place of their own, from the compile cache when it holds them; leaves a policy with
// its own where its patterns cannot be recovered, and all of them if the databases
// cannot be built. compile_policy_set and load_policy_set call it.
void share_databases(std::span<CompiledPolicy* const> policies, const CompileOptions& options);

// The same policies as new ones sharing one set of databases, or `policies` as they are
// if that cannot be: what a reload that compiled some tenants again puts in force.
std::vector<std::shared_ptr<const CompiledPolicy>> with_shared_databases(
    const std::vector<std::shared_ptr<const CompiledPolicy>>& policies, const CompileOptions& options);

class CompiledPolicy {
 public:
  CompiledPolicy(PolicySpec spec, PolicyDatabases dbs, PatternIndex index, PolicySource source,
                 double compile_seconds, uint64_t cache_key);

  const PolicySpec& spec() const { return spec_; }
  const std::string& tenant() const { return spec_.tenant; }
  const std::string& label() const { return label_; }  // "tenant@version"
  // What to scan for a part: its own database, or the set's (shared_ids() then reads
  // the hits' ids); null where it has no patterns for that part.
  const hs_database_t* database(DatabasePart part = DatabasePart::main) const {
    return shared_ ? (has_part_[static_cast<size_t>(part)] ? shared_->dbs.get(part) : nullptr) : dbs_.get(part);
  }
  const hs_database_t* digit_database() const { return database(DatabasePart::digits); }
  const hs_database_t* allow_database() const { return database(DatabasePart::allows); }
  // Per id of the shared databases, this policy's pattern id, or kNotOurs for another
  // tenant's pattern; null while it scans databases of its own.
  static constexpr uint32_t kNotOurs = UINT32_MAX;
  // A hit's id as the policy's own (through shared_ids(), null: it is already); false
  // for another tenant's pattern, which every scan callback passes over.
  static bool own_pattern(const uint32_t* shared_ids, unsigned& id) {
    if (!shared_ids) return true;
    id = shared_ids[id];
    return id != kNotOurs;
  }
  const uint32_t* shared_ids() const { return shared_ ? shared_ids_.data() : nullptr; }
  const SharedDatabases* shared() const { return shared_.get(); }
  // Whether a rule has allow phrases (in allow_database()), which a match of it must be checked against.
  bool has_allow_patterns(uint16_t rule) const { return rule < rules_with_allow_patterns_.size() && rules_with_allow_patterns_[rule]; }
  const PatternMeta& pattern(unsigned id) const { return index_.patterns[id]; }
  std::span<const uint16_t> rules(const PatternMeta& p) const { return {index_.rules.data() + p.rules_begin, p.rule_count}; }
  const MaskedTerms& masked_terms() const { return index_.masked; }
  const MaskedTerms& vocabulary() const { return index_.vocabulary; }
  const PatternIndex& index() const { return index_; }
  std::span<const uint16_t> run_profile(const PatternMeta& p) const {
    return {index_.run_profiles.data() + p.profile_begin, p.kind == PatternKind::term ? p.length : 0};
  }
  size_t pattern_count() const { return index_.patterns.size(); }
  const RuleSpec& rule(uint16_t index) const { return spec_.rules[index]; }
  size_t database_bytes() const;  // all its databases, a shared one included
  PolicySource source() const { return source_; }
  bool from_cache() const { return source_ != PolicySource::compiled; }
  // Rules that need the history of the stream (duplicates, repeat offenders).
  const std::vector<uint16_t>& duplicate_rules() const { return duplicate_rules_; }
  bool keeps_state() const { return !duplicate_rules_.empty() || spec_.repeat_offenders.removals > 0; }
  double compile_seconds() const { return compile_seconds_; }  // or to load, from the cache
  // Names its databases in the compile cache: <key>.hsdb, <key>.digits.hsdb, <key>.allows.hsdb,
  // <key>.starts.hsdb, <key>.digits.starts.hsdb.
  uint64_t cache_key() const { return cache_key_; }
  // Unique in the process, unlike the databases' addresses, which a later policy's may
  // reuse once this one is freed: what a scan context knows it has prepared for.
  uint64_t serial() const { return serial_; }

 private:
  friend void share_databases(std::span<CompiledPolicy* const>, const CompileOptions&);
  friend std::vector<std::shared_ptr<const CompiledPolicy>> with_shared_databases(
      const std::vector<std::shared_ptr<const CompiledPolicy>>&, const CompileOptions&);
  // A copy of `other` without databases, to share those of a new set.
  struct WithoutDatabases {};
  CompiledPolicy(const CompiledPolicy& other, WithoutDatabases);

  PolicySpec spec_;
  std::string label_;
  PolicyDatabases dbs_;
  PatternIndex index_;
  std::vector<bool> rules_with_allow_patterns_;
  std::vector<uint16_t> duplicate_rules_;
  PolicySource source_;
  double compile_seconds_;
  uint64_t cache_key_;
  uint64_t serial_;
  std::shared_ptr<const SharedDatabases> shared_;
  std::vector<uint32_t> shared_ids_;
  std::array<bool, kDatabaseParts> has_part_{};  // which parts it has patterns for
};

// With a cache folder, the databases come from it when it holds them, and what is
// built is written to it: the databases, and the policy's snapshot (policy/snapshot.h).

std::variant<std::shared_ptr<const CompiledPolicy>, PolicyError> compile_policy(PolicySpec spec,
                                                                                  const CompileOptions& options);

// The expressions a policy compiles to, with their Hyperscan flags, and the masked
// spellings of its terms as literals too (civicsift looks those up after the scan):
// for benchmark peers (RE2, PCRE2) and tools, so they find all civicsift does. A scan
// runs over the comment's text, a newline and its skeleton (text/skeleton.h).
struct PatternExpression {
  std::string expression;
  unsigned flags = 0;  // HS_FLAG_*
  View view = View::raw;
};
std::variant<std::vector<PatternExpression>, PolicyError> policy_expressions(const PolicySpec& spec);

// All tenants' compiled policies: an immutable snapshot, swapped whole on reload.
class PolicySet {
 public:
  explicit PolicySet(std::vector<std::shared_ptr<const CompiledPolicy>> policies);
  const CompiledPolicy* find(std::string_view tenant) const;
  const std::vector<std::shared_ptr<const CompiledPolicy>>& policies() const { return policies_; }

 private:
  std::vector<std::shared_ptr<const CompiledPolicy>> policies_;
  std::map<std::string, const CompiledPolicy*, std::less<>> by_tenant_;
};

// Compiles every tenant of `specs` (e.g. from load_policy_dir), side by side.
std::variant<std::shared_ptr<const PolicySet>, PolicyError> compile_policy_set(std::vector<PolicySpec> specs,
                                                                                 const CompileOptions& options);

// Loads and compiles every tenant in `dir`; with a cache folder, a tenant whose files
// are unchanged since its snapshot was written is restored from it instead.
std::variant<std::shared_ptr<const PolicySet>, PolicyError> load_policy_set(const std::filesystem::path& dir,
                                                                              const CompileOptions& options);

// Deletes from the compile cache the databases no policy of `in_use` was built from,
// and temporary files left by interrupted writes, once ten minutes unused: every edit
// of a policy adds a database of a megabyte or more, and a cache in a size-limited
// volume must not grow until the pod is evicted. The age spares what another process
// sharing the folder has just written or loaded (loading marks a file used).
void prune_cache(const std::filesystem::path& dir, const PolicySet& in_use);

// The default cache folder: $CIVICSIFT_CACHE_DIR, else $XDG_CACHE_HOME/civicsift, else ~/.cache/civicsift.
std::filesystem::path default_cache_dir();

}  // namespace civicsift
