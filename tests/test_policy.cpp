#include <fmt/format.h>
#include <gtest/gtest.h>

#include <set>

#include "common/time.h"
#include "policy/loader.h"
#include "classify/verdict_writer.h"
#include "policy/regex_digits.h"
#include "policy/snapshot.h"
#include "test_util.h"

using namespace civicsift;
using civicsift::testing::TempDir;

namespace {
const char* kMinimal = R"(
tenant: town
name: Town of Test
lexicons: [swears]
thresholds: {review: 3, remove: 8}
allow: {phones: ["+1 (519) 255-6100", "311"], domains: [town.ca]}
rules:
  - id: town.swears
    category: profanity
    clause: "Town 1.1"
    action: remove
    lexicon_terms: [swears]
    examples: {match: ["darn it"], no_match: ["darning socks"]}
  - id: town.url
    category: commercial
    clause: "Town 1.2"
    action: review
    score: 4
    regex: ['\bhttps?://[^\s]+']
    validate: domain
)";
const char* kLexicon = "lexicon: swears\nterms: [darn, heck]\nallow: [\"heck of a\"]\n";

std::string error_of(const TempDir& dir, const std::string& policy) {
  const auto file = dir.write("town.yaml", policy);
  auto r = load_policy(file);
  if (auto* e = std::get_if<PolicyError>(&r)) return e->to_string();
  auto c = compile_policy(std::get<PolicySpec>(std::move(r)), {});
  if (auto* e = std::get_if<PolicyError>(&c)) return e->to_string();
  return "";
}
}  // namespace

TEST(PolicyLoader, LoadsRulesLexiconsThresholdsAndAllowLists) {
  TempDir dir;
  dir.write("lexicons/swears.yaml", kLexicon);
  auto r = load_policy(dir.write("town.yaml", kMinimal));
  ASSERT_TRUE(std::holds_alternative<PolicySpec>(r)) << std::get<PolicyError>(r).to_string();
  const auto& spec = std::get<PolicySpec>(r);
  EXPECT_EQ(spec.tenant, "town");
  ASSERT_EQ(spec.rules.size(), 2u);
  EXPECT_EQ(spec.rules[0].score, default_score(Action::remove));
  EXPECT_EQ(spec.rules[1].score, 4);
  EXPECT_EQ(spec.rules[1].validator, Validator::domain);
  EXPECT_EQ(spec.thresholds.remove, 8);
  EXPECT_EQ(spec.allow_phones, (std::vector<std::string>{"5192556100", "311"}));
  EXPECT_EQ(spec.lexicons.at(0).terms.size(), 2u);
  EXPECT_EQ(spec.version.size(), 12u);
}

TEST(PolicyLoader, VersionFollowsPolicyAndLexiconContent) {
  TempDir dir;
  dir.write("lexicons/swears.yaml", kLexicon);
  const auto file = dir.write("town.yaml", kMinimal);
  const auto v1 = std::get<PolicySpec>(load_policy(file)).version;
  dir.write("lexicons/swears.yaml", std::string(kLexicon) + "# changed\n");
  const auto v2 = std::get<PolicySpec>(load_policy(file)).version;
  EXPECT_NE(v1, v2);
}

// The same bytes split differently between two lexicons are a different policy: the
// allow phrase moved from one to the other no longer covers the first one's term.
TEST(PolicyLoader, VersionTellsWhichFileBytesAreIn) {
  TempDir dir;
  const auto file = dir.write("t.yaml",
                              "tenant: t\nlexicons: [a, b]\nrules: [{id: t.r, category: profanity, clause: '1', "
                              "action: remove, lexicon_terms: [a, b]}]\n");
  dir.write("lexicons/a.yaml", "lexicon: a\nterms: [darn]\nallow: [darn good]\n");
  dir.write("lexicons/b.yaml", "lexicon: b\nterms: [heck]\n");
  const auto v1 = std::get<PolicySpec>(load_policy(file)).version;
  dir.write("lexicons/a.yaml", "lexicon: a\nterms: [darn]\n");
  dir.write("lexicons/b.yaml", "allow: [darn good]\nlexicon: b\nterms: [heck]\n");
  const auto v2 = std::get<PolicySpec>(load_policy(file)).version;
  EXPECT_NE(v1, v2);
}

TEST(PolicyLoader, ErrorsNameFileRuleAndReason) {
  TempDir dir;
  dir.write("lexicons/swears.yaml", kLexicon);
  const std::string base = kMinimal;
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = base;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  EXPECT_NE(error_of(dir, with("category: profanity", "category: rudeness")).find("rule town.swears: unknown category \"rudeness\""), std::string::npos);
  EXPECT_NE(error_of(dir, with("action: review", "action: delete")).find("rule town.url: unknown action"), std::string::npos);
  EXPECT_NE(error_of(dir, with("clause: \"Town 1.1\"", "")).find("\"clause\" is required"), std::string::npos);
  EXPECT_NE(error_of(dir, with("id: town.url", "id: town.swears")).find("duplicate rule id"), std::string::npos);
  EXPECT_NE(error_of(dir, with("lexicons: [swears]", "lexicons: [swears, missing]")).find("lexicon \"missing\" not found"), std::string::npos);
  EXPECT_NE(error_of(dir, with("validate: domain", "validate: magic")).find("unknown validator \"magic\" (luhn, phone, domain, short_code, street_address)"), std::string::npos);
  EXPECT_NE(error_of(dir, with("score: 4", "scroe: 4")).find("unknown key \"scroe\""), std::string::npos);
  EXPECT_NE(error_of(dir, "tenant: [oops").find("invalid YAML"), std::string::npos);
  // yaml-cpp keeps a repeated key and lookups see its first value: a second "rules:"
  // block, or a rule's second "action:", would be dropped without a word.
  EXPECT_NE(error_of(dir, base + "rules:\n- {id: town.more, category: spam, clause: X, action: remove, terms: [zz]}\n")
                .find("key \"rules\" is given twice"),
            std::string::npos);
  EXPECT_NE(error_of(dir, with("action: review", "action: review\n    action: allow")).find("key \"action\" is given twice"),
            std::string::npos);
  for (const char* repeat : {"{removals: 2, within: 0s}", "{removals: 0, within: 7d}", "{removals: 5000, within: 7d}"})
    EXPECT_NE(error_of(dir, base + "repeat_offenders: " + repeat + "\n").find("repeat_offenders needs"), std::string::npos)
        << repeat;
  EXPECT_EQ(error_of(dir, base + "repeat_offenders: {removals: 3, within: 30d}\n"), "");
  // An empty value is refused where a text belongs, not read as yaml-cpp's "null" (a
  // route "null" in verdicts, a heading "null" in the clauses table).
  EXPECT_NE(error_of(dir, base + "repeat_offenders: {removals: 3, within: 30d, route: }\n")
                .find("\"route\" must be a text, not empty"),
            std::string::npos);
  EXPECT_NE(error_of(dir, with("name: Town of Test", "name:")).find("\"name\" must be a text, not empty"),
            std::string::npos);
  EXPECT_NE(error_of(dir, with("validate: domain", "validate: [domain]")).find("\"validate\" must be a text, not a list"),
            std::string::npos);
  EXPECT_NE(error_of(dir, with("validate: domain", "direction:")).find("rule town.url"), std::string::npos);
  // A section left empty, or given as a list or a text, is named with its line; a
  // threshold below 1 would switch itself off (0 is what one left out means).
  EXPECT_NE(error_of(dir, with("thresholds: {review: 3, remove: 8}", "thresholds:")).find("line 5: \"thresholds\" must be a mapping, not empty"),
            std::string::npos);
  EXPECT_NE(error_of(dir, with("allow: {phones: [\"+1 (519) 255-6100\", \"311\"], domains: [town.ca]}", "allow: [town.ca]"))
                .find("\"allow\" must be a mapping, not a list"),
            std::string::npos);
  EXPECT_NE(error_of(dir, base + "election: 2026-05-01\n").find("\"election\" must be a mapping, not a text"),
            std::string::npos);
  for (const char* thresholds : {"{review: -1, remove: 8}", "{review: 3, remove: 0}", "{review: 3, escalate: x}"})
    EXPECT_NE(error_of(dir, with("{review: 3, remove: 8}", thresholds)).find("must be a whole number of at least 1"),
              std::string::npos)
        << thresholds;
  EXPECT_NE(error_of(dir, with("score: 4", "routes: [\"\"]")).find("rule town.url: a route must not be empty"),
            std::string::npos);
  EXPECT_NE(error_of(dir, base + "repeat_offenders: {removals: 3, within: 30d, route: \"\"}\n").find("must not be empty"),
            std::string::npos);
  const std::string complex_key = error_of(dir, with("score: 4", "? [a, b]\n    : 4"));
  EXPECT_NE(complex_key.find("rule town.url: line "), std::string::npos) << complex_key;
  EXPECT_NE(complex_key.find("a key must be plain text"), std::string::npos) << complex_key;
  // An error about a rule names the rule's line, from the loader and the compiler alike.
  const auto line_of = [&](const std::string& id) {
    return std::to_string(std::count(base.begin(), base.begin() + base.find("- id: " + id), '\n') + 1);
  };
  EXPECT_NE(error_of(dir, with("id: town.url", "id: town.swears")).find("town.yaml:" + line_of("town.url") + ": rule town.swears: duplicate rule id"),
            std::string::npos);
  EXPECT_NE(error_of(dir, with("\\bhttps?://[^\\s]+", "a(b")).find("town.yaml:" + line_of("town.url") + ": rule town.url: pattern"),
            std::string::npos);
  // A lexicon's terms have no line of their own: the error names the lexicon, no line.
  TempDir other;
  other.write("lexicons/swears.yaml", "lexicon: swears\nterms: [\"!!!\"]\n");
  const std::string lexicon_error = error_of(other, base);
  EXPECT_NE(lexicon_error.find("swears.yaml: rule town.swears: term \"!!!\" has no letters"), std::string::npos)
      << lexicon_error;
}

TEST(PolicyCompiler, RejectedPatternNamesFileRuleAndPattern) {
  TempDir dir;
  dir.write("lexicons/swears.yaml", kLexicon);
  std::string bad = kMinimal;
  const std::string url_regex = "\\bhttps?://[^\\s]+";
  bad.replace(bad.find(url_regex), url_regex.size(), "a(b");
  const auto err = error_of(dir, bad);
  EXPECT_NE(err.find(": rule town.url: pattern 'a(b'"), std::string::npos) << err;
}

TEST(PolicyCompiler, CachesDatabasesByContent) {
  TempDir dir, cache;
  dir.write("lexicons/swears.yaml", kLexicon);
  const auto file = dir.write("town.yaml", kMinimal);
  const CompileOptions options{cache.path() / "db"};
  auto first = civicsift::testing::compile_or_fail(file, options);
  auto second = civicsift::testing::compile_or_fail(file, options);
  ASSERT_TRUE(first && second);
  EXPECT_FALSE(first->from_cache());
  EXPECT_TRUE(second->from_cache());
  EXPECT_EQ(civicsift::testing::fired(*second, "darn it"), std::vector<std::string>{"town.swears"});
  EXPECT_EQ(first->label(), "town@" + first->spec().version);
}

TEST(PolicyCompiler, CorruptCacheFileIsRecompiled) {
  TempDir dir, cache;
  dir.write("lexicons/swears.yaml", kLexicon);
  const auto file = dir.write("town.yaml", kMinimal);
  const CompileOptions options{cache.path()};
  ASSERT_TRUE(civicsift::testing::compile_or_fail(file, options));
  for (const auto& e : std::filesystem::directory_iterator(cache.path()))
    if (e.path().extension() == ".hsdb") std::ofstream(e.path()) << "garbage";
  auto again = civicsift::testing::compile_or_fail(file, options);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->from_cache());
}

namespace {

using PolicySetResult = std::variant<std::shared_ptr<const PolicySet>, PolicyError>;

std::shared_ptr<const PolicySet> set_or_fail(PolicySetResult loaded) {
  if (auto* e = std::get_if<PolicyError>(&loaded)) {
    ADD_FAILURE() << e->to_string();
    return nullptr;
  }
  return std::get<std::shared_ptr<const PolicySet>>(std::move(loaded));
}

// The verdict record `policy` gives `text`, as `civicsift scan` writes it.
std::string verdict_of(const CompiledPolicy& policy, std::string_view text) {
  Verdict v;
  civicsift::testing::fired(policy, text, Direction::inbound, &v);
  Comment c;
  c.id = "t";
  c.tenant = policy.tenant();
  c.text = text;
  std::string out;
  write_verdict(out, c, v, {});
  return out;
}

std::filesystem::path only_snapshot(const TempDir& cache) {
  std::vector<std::filesystem::path> found;
  for (const auto& entry : std::filesystem::directory_iterator(cache.path()))
    if (entry.path().extension() == ".policy") found.push_back(entry.path());
  EXPECT_EQ(found.size(), 1u);
  return found.empty() ? std::filesystem::path{} : found.front();
}

}  // namespace

// Everything a policy is, restored from its snapshot: the same bytes when encoded
// again, the same files named, and the same verdict on every example of every pack.
// The tenants of both sets share their databases (SharedDatabases, the second set's
// from the cache), each reading only its own patterns' hits: every example of every
// pack, read by every tenant, gets the verdict the tenant compiled alone gives it.
// (One test, as the packs' cold compile is most of its time under the sanitizers.)
TEST(PolicySnapshot, TheSecondLoadRestoresEveryPackAsItWasCompiledAndShared) {
  TempDir cache;
  const CompileOptions options{cache.path()};
  const auto built = set_or_fail(load_policy_set(CIVICSIFT_SOURCE_DIR "/patterns", options));
  const auto restored = set_or_fail(load_policy_set(CIVICSIFT_SOURCE_DIR "/patterns", options));
  ASSERT_TRUE(built && restored);
  ASSERT_EQ(built->policies().size(), restored->policies().size());
  const SharedDatabases* shared = built->policies().front()->shared();
  ASSERT_TRUE(shared && restored->policies().front()->shared());
  EXPECT_EQ(shared->source, PolicySource::compiled);
  EXPECT_EQ(restored->policies().front()->shared()->source, PolicySource::cached_databases);
  EXPECT_EQ(restored->policies().front()->shared()->key, shared->key);
  std::vector<std::string> texts;
  for (const auto& p : built->policies())
    for (const auto& rule : p->spec().rules)
      for (const auto* list : {&rule.examples_match, &rule.examples_no_match}) texts.insert(texts.end(), list->begin(), list->end());
  ASSERT_GT(texts.size(), 3000u);
  for (size_t i = 0; i < built->policies().size(); ++i) {
    const CompiledPolicy& a = *built->policies()[i];
    const CompiledPolicy& b = *restored->policies()[i];
    SCOPED_TRACE(a.tenant());
    EXPECT_EQ(a.source(), PolicySource::compiled);
    EXPECT_EQ(b.source(), PolicySource::snapshot);
    EXPECT_EQ(encode_snapshot(a), encode_snapshot(b));
    EXPECT_EQ(a.label(), b.label());
    EXPECT_EQ(a.spec().file, b.spec().file);
    ASSERT_EQ(a.spec().lexicons.size(), b.spec().lexicons.size());
    for (size_t l = 0; l < a.spec().lexicons.size(); ++l) EXPECT_EQ(a.spec().lexicons[l].file, b.spec().lexicons[l].file);
    EXPECT_EQ(a.database_bytes(), b.database_bytes());
    EXPECT_NE(a.allow_database(), nullptr);
    EXPECT_NE(b.allow_database(), nullptr);
    EXPECT_GT(b.vocabulary().size(), 1000u);
    EXPECT_EQ(a.duplicate_rules(), b.duplicate_rules());
    EXPECT_EQ(a.shared(), shared);
    const auto alone = civicsift::testing::compile_or_fail(a.spec().file, options);
    ASSERT_TRUE(alone);
    ASSERT_EQ(alone->shared(), nullptr);
    for (size_t part = 0; part < kDatabaseParts; ++part) {
      const auto which = static_cast<DatabasePart>(part);
      EXPECT_EQ(a.database(which), alone->database(which) ? shared->dbs.get(which) : nullptr) << part;
    }
    for (const auto& text : texts) {
      const std::string verdict = verdict_of(*alone, text);
      EXPECT_EQ(verdict_of(a, text), verdict) << text;
      EXPECT_EQ(verdict_of(b, text), verdict) << text;
    }
  }
}

// Another tenant's patterns in the shared databases fire nothing; a damaged or missing
// cache entry is built again; the entries in use survive pruning; a set of one tenant
// keeps its own databases.
TEST(SharedDatabases, EachTenantReadsOnlyItsOwnPatternsAndTheCacheEntryIsChecked) {
  TempDir dir, cache;
  dir.write("lexicons/swears.yaml", kLexicon);
  dir.write("town.yaml", kMinimal);
  const CompileOptions options{cache.path()};
  auto load = [&] { return set_or_fail(load_policy_set(dir.path(), options)); };
  auto one = load();
  ASSERT_TRUE(one);
  EXPECT_EQ(one->policies().front()->shared(), nullptr);
  EXPECT_NE(one->policies().front()->database(DatabasePart::main), nullptr);

  dir.write("city.yaml", "tenant: city\nrules:\n  - {id: city.spam, category: spam, clause: '2', action: review, "
                         "terms: [bother, darn]}\n");
  using civicsift::testing::fired;
  auto check = [&](const PolicySet& set, PolicySource source) {
    const CompiledPolicy* town = set.find("town");
    const CompiledPolicy* city = set.find("city");
    ASSERT_TRUE(town && city && town->shared());
    EXPECT_EQ(town->shared(), city->shared());
    EXPECT_EQ(town->shared()->source, source);
    EXPECT_NE(town->allow_database(), nullptr);  // the lexicon's allow phrase
    EXPECT_EQ(city->allow_database(), nullptr);
    EXPECT_EQ(fired(*town, "oh bother, darn it"), std::vector<std::string>{"town.swears"});
    EXPECT_EQ(fired(*city, "oh bother, darn it"), (std::vector<std::string>{"city.spam", "city.spam"}));
    EXPECT_EQ(fired(*city, "heck"), std::vector<std::string>{});
    EXPECT_EQ(fired(*town, "heck"), std::vector<std::string>{"town.swears"});
    EXPECT_EQ(fired(*town, "a heck of a day"), std::vector<std::string>{});  // allowed
  };
  auto two = load();
  ASSERT_TRUE(two);
  check(*two, PolicySource::compiled);
  check(*load(), PolicySource::cached_databases);

  const uint64_t key = two->find("town")->shared()->key;
  const auto ids = cache.path() / fmt::format("{:016x}.shared.ids", key);
  const auto db = cache.path() / fmt::format("{:016x}.shared.hsdb", key);
  ASSERT_TRUE(std::filesystem::exists(ids) && std::filesystem::exists(db));
  std::filesystem::resize_file(ids, std::filesystem::file_size(ids) - 4);
  check(*load(), PolicySource::compiled);
  std::filesystem::remove(db);
  check(*load(), PolicySource::compiled);
  std::filesystem::remove(cache.path() / fmt::format("{:016x}.shared.allows.hsdb", key));
  check(*load(), PolicySource::compiled);
  check(*load(), PolicySource::cached_databases);

  const auto old = std::filesystem::file_time_type::clock::now() - std::chrono::hours(1);
  for (const auto& file : {ids, db}) std::filesystem::last_write_time(file, old);
  prune_cache(cache.path(), *two);
  EXPECT_TRUE(std::filesystem::exists(ids) && std::filesystem::exists(db));
  prune_cache(cache.path(), *one);
  EXPECT_FALSE(std::filesystem::exists(ids) || std::filesystem::exists(db));
}

TEST(PolicySnapshot, AnEditedPolicyOrLexiconIsLoadedAgainAndSnapshotAfresh) {
  TempDir dir, cache;
  dir.write("lexicons/swears.yaml", kLexicon);
  dir.write("town.yaml", kMinimal);
  const CompileOptions options{cache.path()};
  auto load = [&] {
    auto set = set_or_fail(load_policy_set(dir.path(), options));
    return set ? set->policies().front() : nullptr;
  };
  ASSERT_EQ(load()->source(), PolicySource::compiled);
  ASSERT_EQ(load()->source(), PolicySource::snapshot);

  dir.write("lexicons/swears.yaml", "lexicon: swears\nterms: [darn, heck, drat]\n");
  auto edited = load();
  EXPECT_EQ(edited->source(), PolicySource::compiled);
  EXPECT_EQ(civicsift::testing::fired(*edited, "drat it"), std::vector<std::string>{"town.swears"});
  auto again = load();
  EXPECT_EQ(again->source(), PolicySource::snapshot);
  EXPECT_EQ(again->label(), edited->label());
  EXPECT_EQ(civicsift::testing::fired(*again, "drat it"), std::vector<std::string>{"town.swears"});
  // The lexicon's allow phrase went with the edit.
  EXPECT_EQ(civicsift::testing::fired(*again, "heck of a day"), std::vector<std::string>{"town.swears"});

  dir.write("town.yaml", std::string(kMinimal) + "# reviewed\n");
  EXPECT_EQ(load()->source(), PolicySource::cached_databases);  // same patterns: the databases are the cache's
  EXPECT_EQ(load()->source(), PolicySource::snapshot);
}

// The reloader compiles an edited tenant with compile_policy: a restart after it
// restores that tenant too.
TEST(PolicySnapshot, CompilingWithACacheWritesTheSnapshotTheNextLoadRestores) {
  TempDir dir, cache;
  dir.write("lexicons/swears.yaml", kLexicon);
  const auto file = dir.write("town.yaml", kMinimal);
  ASSERT_TRUE(civicsift::testing::compile_or_fail(file, {cache.path()}));
  const auto set = set_or_fail(load_policy_set(dir.path(), {cache.path()}));
  ASSERT_TRUE(set);
  EXPECT_EQ(set->policies().front()->source(), PolicySource::snapshot);
}

TEST(PolicySnapshot, ASnapshotWhoseDatabasesAreGoneIsNotUsed) {
  TempDir dir, cache;
  dir.write("lexicons/swears.yaml", kLexicon);
  dir.write("town.yaml", kMinimal);
  ASSERT_TRUE(set_or_fail(load_policy_set(dir.path(), {cache.path()})));
  for (const auto& entry : std::filesystem::directory_iterator(cache.path()))
    if (entry.path().extension() == ".hsdb") std::filesystem::remove(entry.path());
  const auto set = set_or_fail(load_policy_set(dir.path(), {cache.path()}));
  ASSERT_TRUE(set);
  EXPECT_EQ(set->policies().front()->source(), PolicySource::compiled);
  EXPECT_EQ(civicsift::testing::fired(*set->policies().front(), "darn it"), std::vector<std::string>{"town.swears"});
}

// A snapshot cut short anywhere, or with any one byte changed, is refused (and the
// policy compiled instead), never read as something else.
TEST(PolicySnapshot, ATruncatedOrAlteredSnapshotIsRefused) {
  TempDir dir, cache;
  dir.write("lexicons/swears.yaml", kLexicon);
  dir.write("town.yaml", kMinimal);
  ASSERT_TRUE(set_or_fail(load_policy_set(dir.path(), {cache.path()})));
  const auto file = only_snapshot(cache);
  std::ifstream in(file, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  ASSERT_TRUE(decode_snapshot(bytes));
  for (size_t n = 0; n < bytes.size(); ++n) ASSERT_FALSE(decode_snapshot(bytes.substr(0, n))) << n;
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string altered = bytes;
    altered[i] = static_cast<char>(altered[i] ^ 0x20);
    ASSERT_FALSE(decode_snapshot(altered)) << i;
  }
  std::ofstream(file, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  const auto set = set_or_fail(load_policy_set(dir.path(), {cache.path()}));
  ASSERT_TRUE(set);
  EXPECT_EQ(set->policies().front()->source(), PolicySource::cached_databases);
  EXPECT_EQ(civicsift::testing::fired(*set->policies().front(), "darn it"), std::vector<std::string>{"town.swears"});
}

TEST(PolicySet, LoadsADirectoryAndFindsTenants) {
  TempDir dir;
  dir.write("lexicons/swears.yaml", kLexicon);
  dir.write("town.yaml", kMinimal);
  std::string other = kMinimal;
  other.replace(other.find("tenant: town"), 12, "tenant: city");
  dir.write("city.yaml", other);
  auto r = load_policy_set(dir.path(), {});
  ASSERT_TRUE(std::holds_alternative<std::shared_ptr<const PolicySet>>(r));
  const auto& set = *std::get<std::shared_ptr<const PolicySet>>(r);
  EXPECT_EQ(set.policies().size(), 2u);
  EXPECT_NE(set.find("city"), nullptr);
  EXPECT_EQ(set.find("gotham"), nullptr);
}

// Tenants compile side by side; a failure is still the first in folder order.
TEST(PolicySet, CompilesTenantsInParallelAndReportsTheFirstFailureInFolderOrder) {
  TempDir dir;
  dir.write("lexicons/swears.yaml", kLexicon);
  auto tenant = [&](const std::string& name, bool broken) {
    std::string text = kMinimal;
    text.replace(text.find("tenant: town"), 12, "tenant: " + name);
    if (broken) text.replace(text.find("'\\bhttps?"), 1, "'(?<=x)");  // lookbehind: Hyperscan refuses it
    dir.write(name + ".yaml", text);
  };
  tenant("a", false);
  tenant("b", true);
  tenant("c", false);
  tenant("d", true);
  tenant("e", false);
  auto r = load_policy_set(dir.path(), {});
  ASSERT_TRUE(std::holds_alternative<PolicyError>(r));
  const auto& e = std::get<PolicyError>(r);
  EXPECT_EQ(e.file.filename(), "b.yaml") << e.message;
  EXPECT_EQ(e.rule, "town.url");
  std::filesystem::remove(dir.path() / "b.yaml");
  std::filesystem::remove(dir.path() / "d.yaml");
  auto ok = load_policy_set(dir.path(), {});
  ASSERT_TRUE(std::holds_alternative<std::shared_ptr<const PolicySet>>(ok));
  EXPECT_EQ(std::get<std::shared_ptr<const PolicySet>>(ok)->policies().size(), 3u);
}

// Files are parsed side by side too; what is reported stays what a file-by-file load
// would report first: a broken file, or a tenant defined a second time, in folder order.
TEST(PolicySet, ParsesFilesInParallelAndReportsTheFirstProblemInFolderOrder) {
  TempDir dir;
  dir.write("lexicons/swears.yaml", kLexicon);
  auto tenant = [&](const std::string& file, const std::string& name) {
    std::string text = kMinimal;
    text.replace(text.find("tenant: town"), 12, "tenant: " + name);
    dir.write(file, text);
  };
  tenant("a.yaml", "alpha");
  tenant("b.yaml", "beta");
  tenant("c.yaml", "alpha");         // defined twice: reported against c.yaml
  dir.write("d.yaml", "rules: [\n");  // unparsable, but later in folder order
  auto r = load_policy_dir(dir.path());
  ASSERT_TRUE(std::holds_alternative<PolicyError>(r));
  EXPECT_EQ(std::get<PolicyError>(r).file.filename(), "c.yaml");
  EXPECT_NE(std::get<PolicyError>(r).message.find("defined twice"), std::string::npos);
  dir.write("b.yaml", "tenant: [\n");  // now the first problem in folder order
  r = load_policy_dir(dir.path());
  ASSERT_TRUE(std::holds_alternative<PolicyError>(r));
  EXPECT_EQ(std::get<PolicyError>(r).file.filename(), "b.yaml");
  std::filesystem::remove(dir.path() / "b.yaml");
  std::filesystem::remove(dir.path() / "c.yaml");
  std::filesystem::remove(dir.path() / "d.yaml");
  auto ok = load_policy_dir(dir.path());
  ASSERT_TRUE(std::holds_alternative<std::vector<PolicySpec>>(ok));
  EXPECT_EQ(std::get<std::vector<PolicySpec>>(ok).front().tenant, "alpha");
}

#include "policy/phrase_template.h"

namespace {
std::vector<std::string> expand(std::string_view t) {
  auto r = expand_template(t);
  if (auto* e = std::get_if<std::string>(&r)) {
    ADD_FAILURE() << *e;
    return {};
  }
  return std::get<std::vector<std::string>>(r);
}
}  // namespace

TEST(TermTemplate, ExpandsAlternationsOptionalGroupsAndLetters) {
  EXPECT_EQ(expand("plain words"), (std::vector<std::string>{"plain words"}));
  EXPECT_EQ(expand("(i|we) (will|'ll) go"),
            (std::vector<std::string>{"i will go", "i 'll go", "we will go", "we 'll go"}));
  EXPECT_EQ(expand("you are (a )?idiot"), (std::vector<std::string>{"you are a idiot", "you are idiot"}));
  EXPECT_EQ(expand("councill?ors?"),
            (std::vector<std::string>{"councillors", "councillor", "councilors", "councilor"}));
  EXPECT_EQ(expand("((a|b)c|d)"), (std::vector<std::string>{"ac", "bc", "d"}));
}

TEST(TermTemplate, SyntaxErrorsAreNamed) {
  EXPECT_FALSE(template_syntax_error("(a|b) c?").has_value());
  EXPECT_TRUE(template_syntax_error("(a|b").has_value());
  EXPECT_TRUE(template_syntax_error("a)b").has_value());
  EXPECT_TRUE(template_syntax_error("(?a)").has_value());
  // A term that can be spelled with no letter or digit would match nothing.
  for (const char* blank : {"()", "(|)", "(kill|hurt)?", "(a|) b?", "( |-)"})
    EXPECT_TRUE(template_syntax_error(blank).has_value()) << blank;
  for (const char* fine : {"(a )?(idiot|moron)", "councill?ors?", "(é|e)?t", "you( |-)?re"})
    EXPECT_FALSE(template_syntax_error(fine).has_value()) << fine;
}

TEST(TermTemplate, RejectsMalformedAndExplosiveTemplates) {
  EXPECT_TRUE(std::holds_alternative<std::string>(expand_template("(a|b")));
  EXPECT_TRUE(std::holds_alternative<std::string>(expand_template("a)b")));
  EXPECT_TRUE(std::holds_alternative<std::string>(
      expand_template("(a|b|c|d|e|f|g|h|i|j) (a|b|c|d|e|f|g|h|i|j) (a|b|c|d|e|f|g|h|i|j) (a|b|c|d|e|f|g|h|i|j) (a|b|c)")));
}

TEST(TermTemplate, TemplatesMatchLikePlainTerms) {
  TempDir dir;
  dir.write("lexicons/l.yaml", "lexicon: l\nterms: [x]\n");
  auto policy = civicsift::testing::compile_or_fail(dir.write("t.yaml", R"yaml(
tenant: town
rules:
  - id: town.threat
    category: threat
    clause: "Town 3"
    action: escalate
    terms: ["(i|we) ('ll|will|am going to) (kill|hurt) (you|him)"]
)yaml"));
  ASSERT_TRUE(policy);
  using civicsift::testing::fired;
  for (const char* text : {"I'll kill you", "we will HURT him!!", "i am going to k1ll you", "I\xE2\x80\x99ll kill you",
                           "so I will kill you, ok"})
    EXPECT_EQ(fired(*policy, text), std::vector<std::string>{"town.threat"}) << text;
  Verdict v;
  const std::string text = "so I will kill you, ok";
  fired(*policy, text, Direction::inbound, &v);
  ASSERT_EQ(v.matches.size(), 1u);
  EXPECT_EQ(text.substr(v.matches[0].start, v.matches[0].end - v.matches[0].start), "I will kill you");
  EXPECT_TRUE(fired(*policy, "I will kill the motion").empty());
  EXPECT_TRUE(fired(*policy, "skill you have").empty());
}

// A letter made optional after a group ("(quote|estimate)s?") stays a letter: the
// group before it stays required. It once compiled to "(quote|estimate)?", and
// "get free parking" was removed as an advertisement.
TEST(TermTemplate, AnOptionalLetterAfterAGroupKeepsTheGroupRequired) {
  TempDir dir;
  auto policy = civicsift::testing::compile_or_fail(dir.write("t.yaml", R"yaml(
tenant: town
rules:
  - {id: town.ads, category: commercial, clause: "1", action: remove,
     terms: ["(get|ask for)( a)? free (quote|estimate)s?", "(cat|dog)s? food"]}
)yaml"));
  ASSERT_TRUE(policy);
  using civicsift::testing::fired;
  for (const char* text : {"get a free quote", "Ask for free estimates!", "dog food", "cats food"})
    EXPECT_EQ(fired(*policy, text), std::vector<std::string>{"town.ads"}) << text;
  for (const char* text : {"Can we get free parking?", "ask for free help", "get a free", "food", "s food"})
    EXPECT_TRUE(fired(*policy, text).empty()) << text;
}

// A template's alternatives at its top level are alternatives of the whole template,
// between its framing spaces: "darn it|heck no" once compiled to " darn it" or "heck no ",
// which "check no" holds.
TEST(TermTemplate, TopLevelAlternativesAreWholeWords) {
  TempDir dir;
  auto policy = civicsift::testing::compile_or_fail(dir.write("t.yaml", R"yaml(
tenant: town
rules:
  - {id: town.swears, category: profanity, clause: "1", action: remove, terms: ["darn it|heck no"]}
)yaml"));
  ASSERT_TRUE(policy);
  using civicsift::testing::fired;
  for (const char* text : {"oh darn it", "heck no!"})
    EXPECT_EQ(fired(*policy, text), std::vector<std::string>{"town.swears"}) << text;
  for (const char* text : {"check no further", "darn itch", "the darn item"})
    EXPECT_TRUE(fired(*policy, text).empty()) << text;
}

#include "decode/decoder.h"
#include "gen/generator.h"
#include "policy/template_starts.h"
#include "text/skeleton.h"

namespace {
// A template's regex as the compiler writes it, from readable bytes: each becomes \xNN
// (TemplateStarts reads any bytes, skeleton or not), the syntax stays.
std::string template_regex_of(std::string_view readable) {
  std::string out;
  for (char c : readable)
    out += std::string_view("()|?").find(c) != std::string_view::npos ? std::string(1, c)
                                                                      : fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
  return out;
}

std::optional<uint32_t> start_of(std::string_view readable, std::string_view data, uint32_t end) {
  auto t = TemplateStarts::parse(template_regex_of(readable));
  if (!t) {
    ADD_FAILURE() << "not read: " << readable;
    return std::nullopt;
  }
  return t->leftmost_start(data, end);
}
}  // namespace

TEST(TemplateStarts, ReadsTheLeftmostStartBackFromTheEnd) {
  // Of the matches ending at `end`, the one that starts first, as Hyperscan's
  // start-of-match tracking (HS_FLAG_SOM_LEFTMOST) reports it.
  EXPECT_EQ(start_of("(a|ab)?c", "xabc", 4), 1u);
  EXPECT_EQ(start_of("(a|ab)?c", "xbc", 3), 2u);
  EXPECT_EQ(start_of("(x(y|yz)?|w)q", "xyzq", 4), 0u);
  EXPECT_EQ(start_of("(x(y|yz)?|w)q", "wq", 2), 0u);
  EXPECT_EQ(start_of(" (i ?ll|we ?ll) (find|hurt) you ", "so i ll find you ", 17), 2u);
  EXPECT_EQ(start_of(" (i ?ll|we ?ll) (find|hurt) you ", "so ill hurt you ", 16), 2u);
  EXPECT_EQ(start_of("ab??c", "xac", 3), 1u);  // "??": optional too
  // Nothing ends there: another end, other bytes, or past the data.
  EXPECT_EQ(start_of("abc", "abcabc", 5), std::nullopt);
  EXPECT_EQ(start_of("abc", "abcabc", 6), 3u);
  EXPECT_EQ(start_of("(a|ab)?c", "xabd", 4), std::nullopt);
  EXPECT_EQ(start_of("abc", "abc", 4), std::nullopt);
}

TEST(TemplateStarts, RefusesWhatTheCompilerDoesNotWrite) {
  for (const std::string regex : {"(\\x61", "\\x61)", "\\x6", "\\xzz", "a", "\\x61|\\x62", "(\\x61]"})
    EXPECT_FALSE(TemplateStarts::parse(regex)) << regex;
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += '(';
  deep += "\\x61";
  for (int i = 0; i < 40; ++i) deep += ')';
  EXPECT_FALSE(TemplateStarts::parse(deep));
  EXPECT_TRUE(TemplateStarts::parse("(\\x61|(\\x62)?)\\x63"));
}

// The start read back for every template hit equals Hyperscan's own with start-of-match
// tracking, over the packs' examples and generated comments: what the main database's
// scan (compiled without that tracking) relies on for every template of the packs.
TEST(TemplateStarts, AgreesWithHyperscanOnEveryTemplateOfThePacks) {
  auto specs = load_policy_dir(CIVICSIFT_SOURCE_DIR "/patterns");
  ASSERT_TRUE(std::holds_alternative<std::vector<PolicySpec>>(specs));
  std::set<std::string> distinct;
  std::vector<std::string> texts;
  for (const auto& spec : std::get<std::vector<PolicySpec>>(specs)) {
    auto expressions = policy_expressions(spec);
    ASSERT_TRUE(std::holds_alternative<std::vector<PatternExpression>>(expressions));
    for (const auto& e : std::get<std::vector<PatternExpression>>(expressions))
      if (e.view == View::skeleton && e.expression.find('(') != std::string::npos) distinct.insert(e.expression);
    for (const auto& rule : spec.rules)
      for (const auto* list : {&rule.examples_match, &rule.examples_no_match}) texts.insert(texts.end(), list->begin(), list->end());
  }
  const std::vector<std::string> regexes(distinct.begin(), distinct.end());
  ASSERT_GT(regexes.size(), 100u);
  std::vector<TemplateStarts> starts;
  std::vector<const char*> expressions;
  std::vector<unsigned> flags(regexes.size(), HS_FLAG_SOM_LEFTMOST), ids;
  for (const auto& r : regexes) {
    auto t = TemplateStarts::parse(r);
    ASSERT_TRUE(t) << r;
    starts.push_back(std::move(*t));
    expressions.push_back(r.c_str());
    ids.push_back(static_cast<unsigned>(ids.size()));
  }
  hs_database_t* db = nullptr;
  hs_compile_error_t* error = nullptr;
  ASSERT_EQ(hs_compile_multi(expressions.data(), flags.data(), ids.data(), static_cast<unsigned>(ids.size()), HS_MODE_BLOCK,
                             nullptr, &db, &error),
            HS_SUCCESS)
      << (error ? error->message : "");
  hs_scratch_t* scratch = nullptr;
  ASSERT_EQ(hs_alloc_scratch(db, &scratch), HS_SUCCESS);

  gen::CommentGenerator generator;
  Decoder decoder;
  std::string json;
  for (int i = 0; i < 3000; ++i) {
    json.clear();
    generator.next_json(json);
    auto comment = decoder.decode_copy(json);
    ASSERT_TRUE(std::holds_alternative<Comment>(comment));
    texts.emplace_back(std::get<Comment>(comment).text);
  }
  struct Scan {
    const std::vector<TemplateStarts>* starts;
    std::string_view data;
    size_t hits = 0, wrong = 0;
  } scan{&starts, {}};
  text::Skeleton sk;
  for (const auto& text : texts) {
    sk.offset = 0;
    sk.bytes.clear();
    text::build_skeleton(text, sk);
    text::mark_for_scan(sk);
    scan.data = std::string_view(sk.bytes).substr(sk.offset, sk.size);
    ASSERT_EQ(hs_scan(db, scan.data.data(), static_cast<unsigned>(scan.data.size()), 0, scratch,
                      [](unsigned id, unsigned long long from, unsigned long long to, unsigned, void* ctx) {
                        auto* s = static_cast<Scan*>(ctx);
                        ++s->hits;
                        const auto start = (*s->starts)[id].leftmost_start(s->data, static_cast<uint32_t>(to));
                        if (!start || *start != from) ++s->wrong;
                        return 0;
                      },
                      &scan),
              HS_SUCCESS);
  }
  hs_free_scratch(scratch);
  hs_free_database(db);
  EXPECT_GT(scan.hits, 1000u);
  EXPECT_EQ(scan.wrong, 0u);
}

// The raw-text database reads bytes: a non-ASCII character is the group of its bytes,
// so "£?" makes the whole pound sign optional, not just its last byte.
TEST(PolicyCompiler, ANonAsciiCharacterInARegexIsOneUnit) {
  TempDir dir;
  auto policy = civicsift::testing::compile_or_fail(dir.write("t.yaml", R"yaml(
tenant: town
rules:
  - {id: town.charges, category: spam, clause: "1", action: review, regex: ['\btxt\s?@\s?£?\d', '€\d+$']}
)yaml"));
  ASSERT_TRUE(policy);
  using civicsift::testing::fired;
  for (const char* text : {"txt @ 5", "txt @ \xC2\xA3" "5", "only \xE2\x82\xAC" "20"})
    EXPECT_EQ(fired(*policy, text), std::vector<std::string>{"town.charges"}) << text;
  EXPECT_TRUE(fired(*policy, "txt @ \xC2 5").empty());
  EXPECT_TRUE(fired(*policy, "\xE2\x82\xAC" "20 more").empty());  // '$': the end of the comment
}

// What the byte-wise database cannot mean is refused with the rule named: a non-ASCII
// character inside [...] (it would be its bytes, one by one) and '$' before the end.
TEST(PolicyCompiler, RegexesThatCannotMeanWhatTheySayAreRefused) {
  TempDir dir;
  for (const char* regex : {"[£€]\\d", "(end$|x)"}) {
    const auto file = dir.write("t.yaml", std::string("tenant: town\nrules:\n  - {id: town.r, category: spam, clause: '1', "
                                                      "action: review, regex: ['") + regex + "']}\n");
    auto spec = load_policy(file);
    ASSERT_TRUE(std::holds_alternative<PolicySpec>(spec)) << regex;
    auto compiled = compile_policy(std::get<PolicySpec>(std::move(spec)), {});
    ASSERT_TRUE(std::holds_alternative<PolicyError>(compiled)) << regex;
    EXPECT_EQ(std::get<PolicyError>(compiled).rule, "town.r") << regex;
  }
}

// A file system error while loading (here a lexicon that is a symbolic link loop) is a
// policy error like any other, never an exception: a reload keeps the policy in force.
TEST(PolicyLoader, AFileSystemErrorIsAPolicyError) {
  TempDir dir;
  std::filesystem::create_symlink(dir.path() / "lexicons" / "loop.yaml", dir.path() / "lexicons" / "loop.yaml");
  const auto file = dir.write("t.yaml", "tenant: t\nlexicons: [loop]\nrules: []\n");
  auto r = load_policy(file);
  ASSERT_TRUE(std::holds_alternative<PolicyError>(r));
  EXPECT_NE(std::get<PolicyError>(r).message.find("loop"), std::string::npos) << std::get<PolicyError>(r).message;
}

// The cache keeps what the policies in force were built from and what is new (another
// process may have just written it), and drops the rest.
TEST(PolicyCompiler, PruningTheCacheKeepsWhatIsInUseOrNew) {
  TempDir policies, cache;
  const auto file = policies.write("t.yaml", "tenant: town\nrules: [{id: town.a, category: spam, clause: '1', action: review, terms: [spam]}]\n");
  auto set = load_policy_set(policies.path(), {cache.path()});
  ASSERT_TRUE(std::holds_alternative<std::shared_ptr<const PolicySet>>(set));
  const auto& in_use = *std::get<std::shared_ptr<const PolicySet>>(set);
  const auto old = std::filesystem::file_time_type::clock::now() - std::chrono::hours(1);
  std::string snapshot;  // the one the load wrote
  for (const auto& entry : std::filesystem::directory_iterator(cache.path()))
    if (entry.path().extension() == ".policy") snapshot = entry.path().filename().string();
  ASSERT_FALSE(snapshot.empty());
  for (const char* name : {"00000000000000aa.hsdb", "00000000000000aa.digits.hsdb", "00000000000000aa.allows.hsdb",
                           "00000000000000bb.hsdb.tmp1-2f",
                           "00000000000000dd.policy", "00000000000000ee.policy.tmp1-2f"}) {
    cache.write(name, "stale");
    std::filesystem::last_write_time(cache.path() / name, old);
  }
  cache.write("00000000000000cc.hsdb", "fresh");
  cache.write("notes.txt", "not ours");
  const std::string used = fmt::format("{:016x}.hsdb", in_use.policies().front()->cache_key());
  for (const auto& name : {used, snapshot}) std::filesystem::last_write_time(cache.path() / name, old);
  prune_cache(cache.path(), in_use);
  std::set<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(cache.path())) left.insert(entry.path().filename().string());
  EXPECT_EQ(left, (std::set<std::string>{used, snapshot, "00000000000000cc.hsdb", "notes.txt", "lexicons"}));
}

TEST(PolicyLoader, LexiconNamesCannotLeaveTheLexiconFolder) {
  civicsift::testing::TempDir dir;
  dir.write("secret.yaml", "lexicon: secret\nterms: [x]\n");
  const auto file = dir.write("t.yaml", "tenant: t\nlexicons: ['../secret']\nrules: []\n");
  auto r = load_policy(file);
  ASSERT_TRUE(std::holds_alternative<PolicyError>(r));
  EXPECT_NE(std::get<PolicyError>(r).message.find("lexicon name"), std::string::npos);
}

TEST(RegexDigits, FindsRegexesThatCannotMatchWithoutADigit) {
  for (const char* re : {R"(\d{3})", "[0-9]", R"(\b\d{3}[-. ]\d{4}\b)", "(?:a|b)7", R"(\x{35})", R"(\x35)", "[0-9]+x",
                         R"((?:\d|[0-9]){1,2})", "a(?:b|c)*9", R"([\d])"})
    EXPECT_TRUE(regex_requires_digit(re)) << re;
}

TEST(RegexDigits, AnythingOptionalOrUnreadCountsAsMayMatchWithoutADigit) {
  const std::string deep = std::string(200, '(') + "1" + std::string(200, ')');
  for (const std::string& re : std::vector<std::string>{
           R"(a|\d)", R"(\d?)", R"(\d*)", R"(\d{0,3})", R"((\d|x))", R"([\d,.])", "[^0-9]", R"((?i)\d)", R"((?=\d)a)",
        R"(\1)", "[[:digit:]]", R"([\x30-\x39])", R"(\x{0660})", "", "(1", "1)", "[12", R"(\x{35)", R"(\d{2)",
        R"(\d{1a})", R"(\p{Nd})", "(*UTF8)1", R"((*UCP)\d)", deep})
    EXPECT_FALSE(regex_requires_digit(re)) << re;
}

// One literal, many rules: a term listed by several rules (and twice by one) is one
// pattern that fires each of them, and an allow phrase protects only its own rule.
TEST(PolicyCompiler, ATermSharedByRulesFiresEachOfThem) {
  TempDir dir;
  const auto file = dir.write("town.yaml", R"(
tenant: town
name: Town of Test
rules:
  - id: town.a
    category: spam
    clause: "Town 1"
    action: review
    terms: [jackpot, jackpot]
    allow: ["jackpot bingo night"]
  - id: town.b
    category: commercial
    clause: "Town 2"
    action: review
    terms: [jackpot]
  - id: town.c
    category: spam
    clause: "Town 3"
    action: review
    terms: [jackpot, prize]
)");
  auto compiled = civicsift::testing::compile_or_fail(file, {});
  ASSERT_TRUE(compiled);
  EXPECT_EQ(civicsift::testing::fired(*compiled, "win the jackpot"),
            (std::vector<std::string>{"town.a", "town.b", "town.c"}));
  EXPECT_EQ(civicsift::testing::fired(*compiled, "the jackpot bingo night"),
            (std::vector<std::string>{"town.b", "town.c"}));
  EXPECT_EQ(civicsift::testing::fired(*compiled, "a prize"), std::vector<std::string>{"town.c"});
}

const char* kPhoneRule = R"(  - id: town.phone
    category: pii
    clause: "Town 1.3"
    action: remove
    regex: ['\b\d{3}[-. ]\d{4}\b']
)";

TEST(PolicyCompiler, DigitRegexesMatchFromTheirOwnDatabase) {
  TempDir dir;
  dir.write("lexicons/swears.yaml", kLexicon);
  const std::string policy = std::string(kMinimal) + kPhoneRule;
  auto compiled = civicsift::testing::compile_or_fail(dir.write("town.yaml", policy), {});
  ASSERT_TRUE(compiled);
  EXPECT_NE(compiled->digit_database(), nullptr);
  EXPECT_EQ(civicsift::testing::fired(*compiled, "darn it, call 555-0199 now"),
            (std::vector<std::string>{"town.swears", "town.phone"}));
  EXPECT_EQ(civicsift::testing::fired(*compiled, "call five five five"), std::vector<std::string>{});
  // The digit is looked for sixteen bytes at a time, then byte by byte in the tail:
  // a number in the first block, in the third, and only in the tail (a 32-byte prefix).
  const std::string prefix = "please call the office today on ";
  ASSERT_EQ(prefix.size(), 32u);
  for (const std::string& text : std::vector<std::string>{"555-0199 is the office line",
                                                          prefix + "555-0199 or later", prefix + "555-0199"})
    EXPECT_EQ(civicsift::testing::fired(*compiled, text), std::vector<std::string>{"town.phone"}) << text;
}

TEST(PolicyCompiler, APolicyOfOnlyDigitRegexesKeepsOneDatabase) {
  TempDir dir, cache;
  const auto file = dir.write("town.yaml", R"(
tenant: town
name: Town of Test
rules:
  - id: town.phone
    category: pii
    clause: "Town 1.3"
    action: remove
    regex: ['\b\d{3}[-. ]\d{4}\b']
)");
  const CompileOptions options{cache.path()};
  auto first = civicsift::testing::compile_or_fail(file, options);
  auto second = civicsift::testing::compile_or_fail(file, options);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->digit_database(), nullptr);
  EXPECT_TRUE(second->from_cache());
  EXPECT_EQ(civicsift::testing::fired(*second, "555.0199"), std::vector<std::string>{"town.phone"});
}

// The first scans have no start-of-match tracking: a literal's span comes from its
// length, a template's is read back from its end (TemplateStarts), and the regexes
// are scanned again, with it, only where they matched: a policy of literals and
// templates has no second database. Spans are the same either way.
TEST(PolicyCompiler, RegexesGetTheirStartsFromASecondDatabaseTemplatesFromTheirEnds) {
  TempDir dir, cache;
  dir.write("lexicons/swears.yaml", kLexicon);
  const std::string minimal = kMinimal;
  const std::string threat = R"(  - id: town.threat
    category: threat
    clause: "Town 1.4"
    action: escalate
    terms: ["(i ll|i will) (hurt|find) you"]
)";
  const auto no_regex = dir.write("town.yaml", minimal.substr(0, minimal.find("  - id: town.url")) + threat);
  auto literals = civicsift::testing::compile_or_fail(no_regex, {});
  ASSERT_TRUE(literals);
  EXPECT_EQ(literals->database(DatabasePart::main_starts), nullptr);
  EXPECT_EQ(literals->database(DatabasePart::digit_starts), nullptr);
  Verdict found;
  const std::string threatening = "darn, so I will find you, heck";
  civicsift::testing::fired(*literals, threatening, Direction::inbound, &found);
  std::set<std::string> found_spans;
  for (const auto& m : found.matches) found_spans.insert(threatening.substr(m.start, m.end - m.start));
  EXPECT_EQ(found_spans, (std::set<std::string>{"darn", "I will find you", "heck"}));

  const auto file = dir.write("mixed.yaml", minimal + kPhoneRule + threat);
  for (const bool cached : {false, true}) {  // compiled, then restored from its snapshot
    auto compiled = civicsift::testing::compile_or_fail(file, CompileOptions{cache.path()});
    ASSERT_TRUE(compiled);
    EXPECT_EQ(compiled->from_cache(), cached);
    for (auto part : {DatabasePart::main, DatabasePart::main_starts, DatabasePart::digits, DatabasePart::digit_starts})
      EXPECT_NE(compiled->database(part), nullptr) << static_cast<int>(part);
    const std::string text = "darn, I'll find you. See https://spam.example/x or call 555-0199";
    Comment c;
    c.id = "s";
    c.tenant = "town";
    c.text = text;
    ScanContext ctx;
    Verdict v;
    classify(*compiled, c, ctx, v);
    std::set<std::string> spans;
    for (const auto& m : v.matches) spans.insert(text.substr(m.start, m.end - m.start));
    EXPECT_EQ(spans, (std::set<std::string>{"darn", "I'll find you", "https://spam.example/x", "555-0199"}));
    // Literals alone: no variable-length pattern matched, the spans are the literals'.
    c.text = "heck, darn";
    classify(*compiled, c, ctx, v);
    ASSERT_EQ(v.matches.size(), 2u);
    EXPECT_EQ(v.matches[0].start, 0u);
    EXPECT_EQ(v.matches[1].start, 6u);
  }
}

#include "policy/masked_terms.h"
#include "text/skeleton.h"

namespace {
// The rules `word` (a skeleton word) is a masked spelling of, in callback order.
std::vector<uint16_t> masked_rules(const MaskedTerms& terms, std::string_view word, std::vector<uint16_t> runs = {}) {
  runs.resize(word.size(), 1);
  std::vector<uint16_t> rules;
  terms.match(word, runs.data(), [&](uint16_t rule) { rules.push_back(rule); });
  return rules;
}
}  // namespace

TEST(MaskedTerms, OneInteriorBlockMaskedWithTwoLettersKept) {
  MaskedTerms terms;
  std::vector<uint16_t> runs;
  const std::string fuck = text::term_skeleton("fuck", &runs);
  terms.add(fuck, runs, 3);
  terms.add(fuck, runs, 3);  // the same term twice in a rule counts once
  const std::string shit = text::term_skeleton("shit", &runs);
  terms.add(shit, runs, 5);
  EXPECT_EQ(terms.size(), 2u);
  for (const char* word : {"f*ck", "fu*k", "s*it", "sh*t"})
    EXPECT_EQ(masked_rules(terms, word).size(), 1u) << word;
  // With only the first and last letters showing, each hidden letter needs a mask
  // character: "f**k" and "s***t" read, "f*k" and "s*t" ("sit", "set") do not.
  EXPECT_EQ(masked_rules(terms, "f*k", {1, 2, 1}), std::vector<uint16_t>{3});
  EXPECT_EQ(masked_rules(terms, "s*t", {1, 3, 1}), std::vector<uint16_t>{5});
  EXPECT_TRUE(masked_rules(terms, "f*k").empty());
  EXPECT_TRUE(masked_rules(terms, "s*t").empty());
  EXPECT_EQ(masked_rules(terms, "f*ck"), std::vector<uint16_t>{3});
  EXPECT_EQ(masked_rules(terms, "sh*t"), std::vector<uint16_t>{5});
  // Nothing hidden, a mask at an edge, two masked blocks, other letters, no mask.
  for (const char* word : {"fu*ck", "*uck", "fuc*", "f*c*k", "f*cks", "g*ck", "fuck", "f*", "*"})
    EXPECT_TRUE(masked_rules(terms, word).empty()) << word;
  // The lexicons' long words are masked too ("motherf*cking", 13 letters).
  const std::string long_word = text::term_skeleton("unfuckingbelievable", &runs);
  terms.add(long_word, runs, 7);
  EXPECT_EQ(masked_rules(terms, "unf*ckingbelievable"), std::vector<uint16_t>{7});
}

// Two masked blocks, each hiding at least one whole letter: "f*ck*ng", "m*therf*cker".
TEST(MaskedTerms, TwoMaskedBlocks) {
  MaskedTerms terms;
  std::vector<uint16_t> runs;
  uint16_t rule = 1;
  for (const char* term : {"fucking", "motherfucker", "fuck"}) {
    const std::string skeleton = text::term_skeleton(term, &runs);
    terms.add(skeleton, runs, rule++);
  }
  EXPECT_EQ(masked_rules(terms, "f*ck*ng"), std::vector<uint16_t>{1});
  EXPECT_EQ(masked_rules(terms, "f*c*ing"), std::vector<uint16_t>{1});
  EXPECT_EQ(masked_rules(terms, "m*therf*cker"), std::vector<uint16_t>{2});
  // Nothing under one of the masks, letters the term does not have, three blocks.
  for (const char* word : {"f*c*k", "fu*ck*ng", "f*ck*nk", "f*x*ng", "m*th*rf*cker"})
    EXPECT_TRUE(masked_rules(terms, word).empty()) << word;
}

TEST(MaskedTerms, LetterRunsFitAsForUnmaskedTerms) {
  MaskedTerms terms;
  std::vector<uint16_t> runs;
  const std::string assess = text::term_skeleton("assess", &runs);
  ASSERT_EQ(assess, "ases");  // each doubled s is one letter with a run of 2
  terms.add(assess, runs, 1);
  std::vector<uint16_t> fuck_runs;
  const std::string fuck = text::term_skeleton("fuck", &fuck_runs);  // before the runs are read
  terms.add(fuck, fuck_runs, 2);
  EXPECT_EQ(masked_rules(terms, "fu*k", {1, 4, 1, 1}), std::vector<uint16_t>{2});  // "fuuuu*k": stretched
  EXPECT_TRUE(masked_rules(terms, "fu*k", {1, 2, 1, 1}).empty());                  // "fuu*k": another word
  EXPECT_TRUE(masked_rules(terms, "fu*k", {1, 1, 1, 2}).empty());                  // "fu*kk"
  // Away from the mask the doubled s of "assess" must stay doubled: "a*ess" and "ass*ss"
  // do, "a*es" does not. Beside the mask one s of it may show: "as*ss".
  EXPECT_EQ(masked_rules(terms, "a*es", {1, 1, 1, 2}), std::vector<uint16_t>{1});
  EXPECT_EQ(masked_rules(terms, "as*s", {1, 2, 1, 2}), std::vector<uint16_t>{1});
  EXPECT_EQ(masked_rules(terms, "as*s", {1, 1, 1, 2}), std::vector<uint16_t>{1});
  EXPECT_TRUE(masked_rules(terms, "a*es", {1, 1, 1, 1}).empty());
  // Only what the compiler passes: 3 to 32 ASCII letters, one run length each.
  EXPECT_THROW(terms.add("fuck", std::vector<uint16_t>{}, 2), std::invalid_argument);
  EXPECT_THROW(terms.add("f ck", fuck_runs, 2), std::invalid_argument);
  EXPECT_THROW(terms.add("fu", std::vector<uint16_t>{1, 1}, 2), std::invalid_argument);
}

// The mask may hide part of a doubled letter: "a*shole" hides one s of "asshole".
TEST(MaskedTerms, MaskMayHidePartOfADoubledLetter) {
  MaskedTerms terms;
  std::vector<uint16_t> runs;
  const std::string asshole = text::term_skeleton("asshole", &runs);
  ASSERT_EQ(asshole, "ashole");
  terms.add(asshole, runs, 1);
  const std::string bullshit = text::term_skeleton("bullshit", &runs);
  terms.add(bullshit, runs, 2);
  EXPECT_EQ(masked_rules(terms, "a*shole"), std::vector<uint16_t>{1});             // "a*shole"
  EXPECT_EQ(masked_rules(terms, "as*hole"), std::vector<uint16_t>{1});             // "as*hole"
  EXPECT_EQ(masked_rules(terms, "as*ole"), std::vector<uint16_t>{1});              // "as*ole"
  EXPECT_EQ(masked_rules(terms, "bul*shit"), std::vector<uint16_t>{2});            // "bul*shit"
  EXPECT_EQ(masked_rules(terms, "bul*hit"), std::vector<uint16_t>{2});             // "bul*hit"
  EXPECT_TRUE(masked_rules(terms, "bul*shit", {1, 1, 2, 1, 1, 1, 1, 1}).empty());  // "bull*shit": nothing hidden
  EXPECT_TRUE(masked_rules(terms, "as*hole", {1, 2, 1, 1, 1, 1, 1}).empty());     // "ass*hole"
  EXPECT_TRUE(masked_rules(terms, "a*hole", {1, 1, 1, 1, 1, 2}).empty());         // "a*holee"
}

TEST(PolicyCompiler, MaskHidingPartOfADoubledLetterFiresForCivicsiftAndPeers) {
  TempDir dir;
  const auto file = dir.write("town.yaml", R"(
tenant: town
rules:
  - id: town.swears
    category: profanity
    clause: "Town 1"
    action: remove
    terms: [asshole]
)");
  auto compiled = civicsift::testing::compile_or_fail(file, {});
  ASSERT_TRUE(compiled);
  for (const char* comment : {"what an A*SHOLE!", "as#hole", "ass*ole", "a**hole", "a*hole"})
    EXPECT_EQ(civicsift::testing::fired(*compiled, comment), std::vector<std::string>{"town.swears"}) << comment;
  for (const char* comment : {"ass*hole", "as*holes", "a*hol"})
    EXPECT_TRUE(civicsift::testing::fired(*compiled, comment).empty()) << comment;
  // The peers' literals: the term, 10 spellings hiding whole letters of "ashole", 4
  // hiding one s and the letters after it, 1 hiding only the first s.
  auto expressions = policy_expressions(compiled->spec());
  ASSERT_TRUE(std::holds_alternative<std::vector<PatternExpression>>(expressions));
  EXPECT_EQ(std::get<std::vector<PatternExpression>>(expressions).size(), 16u);
}

TEST(PolicyCompiler, MaskedSpellingsAreLookedUpNotCompiledExceptForPeers) {
  TempDir dir;
  const auto file = dir.write("town.yaml", R"(
tenant: town
name: Town of Test
rules:
  - id: town.swears
    category: profanity
    clause: "Town 1"
    action: remove
    terms: [fuck, ass, "piece of crap"]
  - id: town.spam
    category: spam
    clause: "Town 2"
    action: review
    terms: [fuck]
)");
  auto compiled = civicsift::testing::compile_or_fail(file, {});
  ASSERT_TRUE(compiled);
  // One literal per distinct term; "fuck" of both rules in the index ("ass" is "as" with a
  // doubled s, too short to mask; phrases are not masked).
  EXPECT_EQ(compiled->pattern_count(), 3u);
  EXPECT_EQ(compiled->masked_terms().size(), 2u);
  EXPECT_EQ(civicsift::testing::fired(*compiled, "what the f*ck, fu**k and f##k"),
            (std::vector<std::string>{"town.swears", "town.spam", "town.swears", "town.spam", "town.swears",
                                      "town.spam"}));
  Verdict v;
  civicsift::testing::fired(*compiled, "oh F**K you", Direction::inbound, &v);
  ASSERT_EQ(v.matches.size(), 2u);
  EXPECT_EQ(v.matches[0].start, 3u);  // source bytes of the masked word, "F**K"
  EXPECT_EQ(v.matches[0].end, 7u);
  // The peers have no lookup: they get the spellings as literals ("f*ck", "f*k", "fu*k").
  auto expressions = policy_expressions(compiled->spec());
  ASSERT_TRUE(std::holds_alternative<std::vector<PatternExpression>>(expressions));
  EXPECT_EQ(std::get<std::vector<PatternExpression>>(expressions).size(), 6u);
}

// Allow phrases (literals, and regexes for those of many spellings) are in a database of
// their own, scanned only when a rule they protect matched; they still cancel the match.
TEST(PolicyCompiler, AllowPhrasesHaveTheirOwnDatabase) {
  TempDir dir;
  const auto file = dir.write("t.yaml", R"(
tenant: town
rules:
  - id: town.spam
    category: spam
    clause: "1"
    action: review
    terms: [spam]
    allow: ['(a|b|c|d|e|f|g|h|i) (a|b|c|d|e|f|g|h|i) spam', 'spam musubi']
  - id: town.ham
    category: spam
    clause: "2"
    action: review
    terms: [ham]
)");
  auto compiled = civicsift::testing::compile_or_fail(file, {});
  ASSERT_TRUE(compiled);
  EXPECT_NE(compiled->allow_database(), nullptr);
  EXPECT_TRUE(compiled->has_allow_patterns(0));
  EXPECT_FALSE(compiled->has_allow_patterns(1));
  EXPECT_EQ(civicsift::testing::fired(*compiled, "spam again"), std::vector<std::string>{"town.spam"});
  EXPECT_TRUE(civicsift::testing::fired(*compiled, "c g spam again").empty());
  EXPECT_TRUE(civicsift::testing::fired(*compiled, "spam musubi for lunch").empty());
  EXPECT_EQ(civicsift::testing::fired(*compiled, "c g ham"), std::vector<std::string>{"town.ham"});
}

// The words of a template too big to spell out (100,000 spellings here) are masked
// words' vocabulary all the same: "tr*ll" is written out as "troll".
TEST(PolicyCompiler, WordsOfLargeTemplatesAreVocabulary) {
  TempDir dir;
  const auto file = dir.write("t.yaml", R"(
tenant: town
rules:
  - id: town.insult
    category: harassment
    clause: "1"
    action: remove
    terms: ['(you|u) (big|small|old|new|red|tall|short|fat|lazy|mean) (big|small|old|new|red|tall|short|fat|lazy|mean) (big|small|old|new|red|tall|short|fat|lazy|mean) (big|small|old|new|red|tall|short|fat|lazy|mean) (big|small|old|new|red|tall|short|fat|lazy|mean) (troll|gremlins?)']
)");
  auto compiled = civicsift::testing::compile_or_fail(file, {});
  ASSERT_TRUE(compiled);
  EXPECT_EQ(civicsift::testing::fired(*compiled, "you big small old new red tr*ll"), std::vector<std::string>{"town.insult"});
  EXPECT_EQ(civicsift::testing::fired(*compiled, "u mean mean mean mean mean gr*mlins"), std::vector<std::string>{"town.insult"});
}

// Election dates are whole days where the municipality is: a campaign post at 11:30 pm
// on the closing day is inside the period, although it is the next day in UTC. A
// date-time is exact (Ontario's nominations close at 2 pm).
TEST(PolicyLoader, ElectionDatesAreLocalDaysAndDateTimesAreExact) {
  TempDir dir;
  const auto campaign_fires = [&](const std::string& election, const char* ts) {
    const auto policy = civicsift::testing::compile_or_fail(dir.write("e.yaml", R"yaml(
tenant: town
election: )yaml" + election + R"yaml(
rules:
  - id: town.campaign
    category: election
    clause: "Town 7"
    action: remove
    during: election
    terms: ["vote for me"]
)yaml"));
    Comment c;
    c.id = "e";
    c.tenant = "town";
    c.text = "vote for me";
    c.ts_ms = ts ? *parse_timestamp_ms(ts) : kNoTime;
    ScanContext ctx;
    Verdict v;
    classify(*policy, c, ctx, v);
    return !v.matches.empty();
  };
  const std::string local = R"({nominations_open: 2026-05-01, nominations_close: 2026-08-21, utc_offset: "-04:00"})";
  EXPECT_FALSE(campaign_fires(local, "2026-04-30T23:30:00-04:00"));
  EXPECT_TRUE(campaign_fires(local, "2026-05-01T00:30:00-04:00"));
  EXPECT_TRUE(campaign_fires(local, "2026-08-21T23:30:00-04:00"));
  EXPECT_FALSE(campaign_fires(local, "2026-08-22T00:30:00-04:00"));
  const std::string utc = "{nominations_open: 2026-05-01, nominations_close: 2026-08-21}";
  EXPECT_FALSE(campaign_fires(utc, "2026-08-21T23:30:00-04:00"));  // already the 22nd in UTC
  const std::string exact = R"({nominations_open: 2026-05-01, nominations_close: "2026-08-21T14:00:00-04:00", utc_offset: "-04:00"})";
  EXPECT_TRUE(campaign_fires(exact, "2026-08-21T14:00:00-04:00"));
  EXPECT_FALSE(campaign_fires(exact, "2026-08-21T14:00:01-04:00"));
  // A comment without ts is judged as posted now; one at the epoch, at the epoch.
  const std::string lasting = "{nominations_open: 2000-01-01, nominations_close: 2999-12-31}";
  EXPECT_TRUE(campaign_fires(lasting, nullptr));
  EXPECT_FALSE(campaign_fires(lasting, "1970-01-01T00:00:00Z"));
  // A period that opens at the epoch is a period like any other, not "no period".
  const std::string from_epoch = "{nominations_open: \"1970-01-01T00:00:00Z\", nominations_close: 1970-01-02}";
  EXPECT_TRUE(campaign_fires(from_epoch, "1970-01-01T00:00:00Z"));
  EXPECT_FALSE(campaign_fires(from_epoch, "1970-01-03T00:00:00Z"));
  EXPECT_NE(error_of(dir, R"yaml(
tenant: town
election: {nominations_open: 2026-05-01, nominations_close: 2026-08-21, utc_offset: EST}
rules:
  - {id: town.campaign, category: election, clause: "Town 7", action: remove, during: election, terms: [vote for me]}
)yaml")
                .find("\"utc_offset\" must look like -04:00"),
            std::string::npos);
}
