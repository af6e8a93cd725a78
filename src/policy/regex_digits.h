// policy: which raw-text regexes cannot match without an ASCII digit.
//
// Phone numbers, postcodes, card numbers, street addresses and prices are most of a
// policy's regexes and a third of its scan time, yet five in six municipal comments
// hold no digit at all. The compiler puts the regexes that need one into a database
// of their own, scanned only over comments that hold a digit.
#pragma once

#include <string_view>

namespace civicsift {

// True only when every match of `regex` (Hyperscan/PCRE syntax) contains a byte
// '0'-'9'. Anything the analysis does not understand counts as "may match without a
// digit", so a wrong answer can only cost speed, never a match.
bool regex_requires_digit(std::string_view regex);

}  // namespace civicsift
