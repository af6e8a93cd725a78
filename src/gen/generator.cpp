#include "gen/generator.h"

#include <fmt/format.h>

#include <array>

#include "classify/verdict_writer.h"

namespace civicsift::gen {
namespace {

template <size_t N>
const char* pick(std::mt19937_64& rng, const std::array<const char*, N>& items) {
  return items[std::uniform_int_distribution<size_t>(0, N - 1)(rng)];
}

constexpr std::array<const char*, 16> kPlaces = {
    "Main Street", "the library", "Riverside Park", "the arena", "Wellington Road", "the community centre",
    "the transit terminal", "Elm Avenue", "the splash pad", "the landfill", "Concession 4", "the dog park",
    "the farmers market", "King Street", "the marina", "the soccer fields"};
constexpr std::array<const char*, 24> kBenign = {
    "Is garbage pickup delayed this week because of the holiday at {}?",
    "There is a huge pothole near {} that nearly took out my tire.",
    "Thanks to the crew who cleared the snow on {} so quickly this morning.",
    "When will the pool at {} reopen for the season?",
    "The new bike lanes on {} are great, my kids ride to school now.",
    "Can someone check the streetlight that has been out near {} for two weeks?",
    "Property taxes went up again, I would like to see the budget breakdown for {}.",
    "Love the fall festival at {}, see everyone there Saturday!",
    "Bus 12 was 20 minutes late again at {}, any update on the schedule?",
    "Please add more benches near {} for seniors.",
    "The water main work on {} has been going on for a month, when will it finish?",
    "Great job on the new playground at {}.",
    "Does the yard waste collection include branches from {}?",
    "Who do I contact about a noise complaint near {}?",
    "The library program at {} was wonderful for my kids.",
    "Thank you for posting the road closure info for {}.",
    "Is the parking lot at {} free on weekends?",
    "The traffic light timing at {} causes long backups at rush hour.",
    "I hope the council considers a crosswalk near {}.",
    "Beautiful photos of {}, this town is lovely in the fall.",
    "Are dogs allowed off leash at {}?",
    "The recycling bins at {} are overflowing again.",
    "Any news on the rink opening at {} this winter?",
    "Well done to the volunteers who cleaned up {} yesterday."};
constexpr std::array<const char*, 8> kBenignFr = {
    "Merci pour le déneigement rapide sur {} ce matin.",
    "Quand est-ce que la piscine de {} va rouvrir?",
    "Il y a un gros nid-de-poule près de {}.",
    "Le festival à {} était magnifique, bravo à l'équipe!",
    "Est-ce que la collecte des ordures est retardée près de {}?",
    "Les nouvelles pistes cyclables sur {} sont super.",
    "Pourquoi l'autobus est toujours en retard à {}?",
    "Merci aux bénévoles qui ont nettoyé {} hier."};
constexpr std::array<const char*, 30> kViolations = {
    "this council is full of f*cking idiots",
    "what a load of sh1t, fix the roads",
    "f.u.c.k this town and its taxes",
    "you are stupid if you believe the mayor",
    "the planner is a useless moron",
    "call me at 519-555-0147 for cheap snow removal",
    "email me at deals4you@gmail.com for a quote",
    "check out my channel www.bestdeals-now.com and subscribe",
    "Earn $500 a day working from home, DM me",
    "I will find you and you will regret it",
    "someone should burn down city hall",
    "I want to kill myself, nobody cares",
    "my card is 4111 1111 1111 1111 if you need it",
    "my neighbour John lives at 42 Elm Street and his SIN is 046 454 286",
    "buy weed online, fast delivery, no prescription",
    "send nudes lol",
    "me too",
    "vote for me in the election, re-elect Smith!",
    "the closed session report says the plant will be sold",
    "fuuuuck the parking tickets",
    "$hit show at the council meeting",
    "shut up you b1tch",
    "invest in bitcoin now and double your money guaranteed",
    "go kill yourself",
    "promo code SAVE20 at my store",
    "first!",
    "the password to the pump station panel is admin123",
    "what a piece of sh!t mayor",
    "F U C K the new bylaw",
    "you deserve to die for this decision"};
constexpr std::array<const char*, 6> kViolationsFr = {
    "câlisse de ville de marde", "tabarnak, réparez les rues", "t'es juste un crétin",
    "je vais te trouver et tu vas le regretter", "osti de conseil incompétent", "je veux mourir, plus rien ne va"};

}  // namespace

CommentGenerator::CommentGenerator(GeneratorOptions options) : options_(std::move(options)), rng_(options_.seed) {}

std::string CommentGenerator::benign_sentence(bool french) {
  const char* place = pick(rng_, kPlaces);
  return fmt::format(fmt::runtime(french ? pick(rng_, kBenignFr) : pick(rng_, kBenign)), place);
}

std::string CommentGenerator::violation(bool french) {
  return french ? pick(rng_, kViolationsFr) : pick(rng_, kViolations);
}

std::string CommentGenerator::next_text() {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const std::string& tenant = options_.tenants[count_ % options_.tenants.size()];
  const bool french = tenant == "saint-john" && u(rng_) < 0.3;
  std::string text;
  const double shape = u(rng_);
  if (shape < 0.05) {
    text = pick(rng_, std::array<const char*, 6>{"Thanks!", "agreed", "When?", "Merci", "great news", "👍"});
  } else if (shape < 0.05 + options_.long_share) {
    const int sentences = std::uniform_int_distribution<int>(15, 100)(rng_);
    for (int i = 0; i < sentences; ++i) text += benign_sentence(french) + (i % 5 == 4 ? "\n\n" : " ");
  } else {
    text = benign_sentence(french);
    if (u(rng_) < 0.3) text += " " + benign_sentence(french);
  }
  if (u(rng_) < options_.violation_share) {
    if (text.size() > 200 || u(rng_) < 0.5) text += " " + violation(french);
    else text = violation(french);
  }
  ++count_;
  return text;
}

void CommentGenerator::next_json(std::string& out) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const std::string& tenant = options_.tenants[count_ % options_.tenants.size()];
  const uint64_t n = count_;
  const std::string text = next_text();
  const bool outbound = u(rng_) < options_.outbound_share;
  static constexpr std::array<const char*, 4> kChannels = {"facebook", "instagram", "youtube", "x"};
  // Thread before author: the order of draws that earlier streams (and seeds) were made with.
  const int thread = std::uniform_int_distribution<int>(1, 300)(rng_);
  last_author_ = fmt::format("u{}", std::uniform_int_distribution<int>(1, 5000)(rng_));
  fmt::format_to(std::back_inserter(out), R"({{"id":"c{:08d}","tenant":"{}","author":"{}","thread":"t{}",)", n,
                 tenant, last_author_, thread);
  fmt::format_to(std::back_inserter(out), R"("channel":"{}","direction":"{}","text":)", pick(rng_, kChannels),
                 outbound ? "outbound" : "inbound");
  append_json_string(out, text);
  out.push_back('}');
}

}  // namespace civicsift::gen
