// classify: checks on one matched span, run right after the scan (never a rescan).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace civicsift::validators {

// 9 to 19 digits (separators ignored) whose Luhn checksum holds: SINs and card numbers.
// Not: nine ending in 000 (an amount, "125 000 000 $"), nine followed by a program
// account ("119219814 RR 0001" in `after`: a business or charity number) or beginning
// with 8 (no SIN does), twelve or more that begin with 0 (no card does: times in a bus
// schedule), and thirteen beginning 978 or 979 (an ISBN).
bool luhn(std::string_view span, std::string_view after = {});

// A dialable North American number (valid area and exchange codes, extension ignored)
// that is not one of `allowed` (digits only, country code stripped).
bool phone(std::string_view span, const std::vector<std::string>& allowed);

// A URL, host or e-mail (also "name at host dot ca") whose domain is not `allowed`
// nor a subdomain of an allowed one. A bare host whose last label is capitalised after
// a lower-case letter ("today.Shop local") is a missing space, not a host.
bool domain(std::string_view span, const std::vector<std::string>& allowed);

// The number that ends the span has 4 to 6 digits: a text-message short code ("to
// 80082"), not a street number ("to 530 Ouellette"). Terms need this check: the
// skeleton reads a repeated digit once ("82277" is "827"), so they cannot count digits.
// An amount ("$5458"), a round count ending in 000 ("to 5000 people") or a phone
// number's last group ("1-800-222-8477", "1 800 222 8477") is none.
bool short_code(std::string_view span);

// The word after the span's last number is a name, as in "1450 Ouellette Avenue", not
// a word of a sentence that happens to be followed by a street: "at 7 on Main St",
// "401 to Walker Rd", "a 5 minute drive", "Exit 13 off the highway", "10:45 a.m. Road closures".
bool street_address(std::string_view span);

}  // namespace civicsift::validators
