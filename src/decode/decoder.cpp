#include "decode/decoder.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <utf8proc.h>

#include <optional>

#include "common/time.h"

namespace civicsift {

namespace od = simdjson::ondemand;

std::string_view to_string(DecodeErrorCode code) {
  switch (code) {
    case DecodeErrorCode::empty_line: return "empty_line";
    case DecodeErrorCode::line_too_long: return "line_too_long";
    case DecodeErrorCode::not_json: return "not_json";
    case DecodeErrorCode::not_object: return "not_object";
    case DecodeErrorCode::too_deep: return "too_deep";
    case DecodeErrorCode::trailing_garbage: return "trailing_garbage";
    case DecodeErrorCode::invalid_utf8: return "invalid_utf8";
    case DecodeErrorCode::missing_id: return "missing_id";
    case DecodeErrorCode::empty_id: return "empty_id";
    case DecodeErrorCode::id_not_string: return "id_not_string";
    case DecodeErrorCode::missing_tenant: return "missing_tenant";
    case DecodeErrorCode::tenant_not_string: return "tenant_not_string";
    case DecodeErrorCode::missing_text: return "missing_text";
    case DecodeErrorCode::text_not_string: return "text_not_string";
    case DecodeErrorCode::invalid_field: return "invalid_field";
    case DecodeErrorCode::unknown_tenant: return "unknown_tenant";
  }
  return "unknown";
}

struct Decoder::Impl {
  od::parser parser;
  simdjson::dom::parser validator;  // names the cause when the fast path fails
  std::string copy;  // padded copy for decode_copy()
};

Decoder::Decoder(DecoderOptions options)
    : options_(options), impl_(std::make_unique<Impl>()) {}
Decoder::~Decoder() = default;
Decoder::Decoder(Decoder&&) noexcept = default;
Decoder& Decoder::operator=(Decoder&&) noexcept = default;

namespace {

DecodeError error(DecodeErrorCode code, std::string message, std::string_view id = {}) {
  return DecodeError{code, std::move(message), std::string(id)};
}

DecodeError from_simdjson(simdjson::error_code e, std::string_view id = {}) {
  switch (e) {
    case simdjson::UTF8_ERROR:
      return error(DecodeErrorCode::invalid_utf8, "input is not valid UTF-8", id);
    case simdjson::DEPTH_ERROR:
      return error(DecodeErrorCode::too_deep, "JSON nesting is too deep", id);
    case simdjson::TRAILING_CONTENT:
      return error(DecodeErrorCode::trailing_garbage, "unexpected content after the JSON value", id);
    case simdjson::STRING_ERROR:
      return error(DecodeErrorCode::not_json, "invalid string escape (e.g. a lone surrogate)", id);
    default:
      return error(DecodeErrorCode::not_json,
                   fmt::format("input is not valid JSON ({})", simdjson::error_message(e)), id);
  }
}

// A key as it stands in the input, or a null view when it holds an escape. The input
// is valid UTF-8 (checked in stage 1) and the key ends at its closing quote.
std::string_view raw_key(od::raw_json_string key) {
  const char* begin = key.raw();
  const char* end = begin;
  while (*end != '"') {
    if (*end == '\\') return {};
    ++end;
  }
  return {begin, static_cast<size_t>(end - begin)};
}

// Whether `token` (with any white space after it) is a JSON number:
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
bool is_json_number(std::string_view token) {
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t' || token.back() == '\n' || token.back() == '\r'))
    token.remove_suffix(1);
  size_t i = 0;
  auto digits = [&] {
    const size_t from = i;
    while (i < token.size() && token[i] >= '0' && token[i] <= '9') ++i;
    return i - from;
  };
  if (i < token.size() && token[i] == '-') ++i;
  if (i < token.size() && token[i] == '0') ++i;
  else if (digits() == 0) return false;
  if (i < token.size() && token[i] == '.') {
    ++i;
    if (digits() == 0) return false;
  }
  if (i < token.size() && (token[i] == 'e' || token[i] == 'E')) {
    ++i;
    if (i < token.size() && (token[i] == '+' || token[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == token.size();
}

// Walks a value we do not use, so malformed JSON in ignored fields is still caught
// and nesting stays bounded. `depth`: the value's level, the root object's being 1;
// only objects and arrays count against `max_depth`.
simdjson::error_code skip_value(od::value value, size_t depth, size_t max_depth) {
  od::json_type type;
  if (auto e = value.type().get(type)) return e;
  if ((type == od::json_type::object || type == od::json_type::array) && depth > max_depth)
    return simdjson::DEPTH_ERROR;
  switch (type) {
    case od::json_type::object: {
      od::object obj;
      if (auto e = value.get_object().get(obj)) return e;
      for (auto field : obj) {
        std::string_view key;
        if (auto e = field.unescaped_key().get(key)) return e;
        if (auto e = skip_value(field.value(), depth + 1, max_depth)) return e;
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::array: {
      od::array arr;
      if (auto e = value.get_array().get(arr)) return e;
      for (auto element : arr) {
        od::value v;
        if (auto e = element.get(v)) return e;
        if (auto e = skip_value(v, depth + 1, max_depth)) return e;
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::string: {
      std::string_view s;
      return value.get_string().get(s);
    }
    case od::json_type::number: {
      // Not parsed: an ignored field may hold any number JSON allows, 30 digits or
      // 1e400 included, which do not fit a double or a 64-bit integer.
      return is_json_number(value.raw_json_token()) ? simdjson::SUCCESS : simdjson::NUMBER_ERROR;
    }
    case od::json_type::boolean: {
      bool b;
      return value.get_bool().get(b);
    }
    case od::json_type::null: {
      bool is_null = false;
      if (auto e = value.is_null().get(is_null)) return e;
      return is_null ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
    }
  }
  return simdjson::TAPE_ERROR;
}

// Where the first object or array in `input` closes, when more than white space
// follows it; npos otherwise. One linear pass that respects strings.
size_t first_value_end(std::string_view input) {
  size_t i = input.find_first_not_of(" \t\r\n");
  if (i == std::string_view::npos || (input[i] != '{' && input[i] != '[')) return std::string_view::npos;
  size_t depth = 0;
  bool in_string = false;
  for (; i < input.size(); ++i) {
    const char c = input[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if ((c == '}' || c == ']') && --depth == 0) {
      const size_t end = i + 1;
      return input.find_first_not_of(" \t\r\n", end) == std::string_view::npos ? std::string_view::npos : end;
    }
  }
  return std::string_view::npos;
}

// The id of a whole object, for an error found before its id was read ("text":5
// ahead of "id"), so the record still names it; empty when it has none.
std::string_view id_of(const simdjson::dom::element& object) {
  std::string_view id;
  return object["id"].get(id) == simdjson::SUCCESS ? id : std::string_view{};
}

// A line that breaks JSON's text rules (a Latin-1 export's bytes, a pasted tab inside a
// string) still names its id when the id itself is sound: a copy with each fault
// replaced by U+FFFD is parsed for the id alone, and an id that held a fault is not given.
std::string sound_id(simdjson::dom::parser& validator, std::string_view input) {
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string clean;
  clean.reserve(input.size() + simdjson::SIMDJSON_PADDING);
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < input.size();) {
    const auto c = static_cast<unsigned char>(input[i]);
    if (c >= 0x80) {
      utf8proc_int32_t code_point;
      const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(input.data() + i),
                                      static_cast<utf8proc_ssize_t>(input.size() - i), &code_point);
      const size_t length = n > 0 ? static_cast<size_t>(n) : 1;
      if (n > 0) clean.append(input.substr(i, length));
      else clean.append(kReplacement);
      i += length;
      escaped = false;
      continue;
    }
    if (in_string && c < 0x20) clean.append(kReplacement);
    else clean.push_back(static_cast<char>(c));
    if (!in_string) in_string = c == '"';
    else if (escaped) escaped = false;
    else if (c == '\\') escaped = true;
    else if (c == '"') in_string = false;
    ++i;
  }
  const size_t size = clean.size();
  clean.append(simdjson::SIMDJSON_PADDING, ' ');
  simdjson::dom::element root;
  if (validator.parse(clean.data(), size, false).get(root) != simdjson::SUCCESS) return {};
  const std::string_view id = id_of(root);
  return id.find(kReplacement) == std::string_view::npos ? std::string(id) : std::string();
}

// A line that fails before any field is read (cut off before its closing brace, say)
// still names its id when the id is its first field and whole: `{"id":"...",` with the
// string sound JSON on its own.
std::string leading_id(simdjson::dom::parser& validator, std::string_view input) {
  size_t i = input.find_first_not_of(" \t");
  const auto skip_space = [&] { i = std::min(input.size(), input.find_first_not_of(" \t", i)); };
  const auto take = [&](char c) {
    if (i >= input.size() || input[i] != c) return false;
    ++i;
    skip_space();
    return true;
  };
  if (i == std::string_view::npos || !take('{') || input.substr(i, 4) != "\"id\"") return {};
  i += 4;
  skip_space();
  if (!take(':') || i >= input.size() || input[i] != '"') return {};
  size_t end = i + 1;
  while (end < input.size() && input[end] != '"') end += input[end] == '\\' ? 2 : 1;
  if (end >= input.size()) return {};
  std::string object = "{\"id\":";
  object.append(input.substr(i, end + 1 - i));
  object += '}';
  const size_t size = object.size();
  object.append(simdjson::SIMDJSON_PADDING, ' ');
  simdjson::dom::element root;
  if (validator.parse(object.data(), size, false).get(root) != simdjson::SUCCESS) return {};
  return std::string(id_of(root));
}

// The On Demand parser reports the first thing it trips on, which may be a symptom
// ("not an object" for `nul`); a full parse of the (rare) failing input names the cause.
DecodeError diagnose(simdjson::dom::parser& validator, std::string_view input, simdjson::error_code seen,
                     std::string_view id) {
  if (seen == simdjson::DEPTH_ERROR) return from_simdjson(seen, id);
  simdjson::dom::element root;
  const auto e = validator.parse(input.data(), input.size(), false).get(root);
  if (e == simdjson::SUCCESS) {
    if (!root.is_object()) return error(DecodeErrorCode::not_object, "input is JSON but not an object", id);
    return from_simdjson(seen, id.empty() ? id_of(root) : id);
  }
  if (const size_t end = first_value_end(input); end != std::string_view::npos) {
    std::string prefix(input.substr(0, end));
    prefix.append(simdjson::SIMDJSON_PADDING, ' ');
    simdjson::dom::element object;
    if (validator.parse(prefix.data(), end, false).get(object) == simdjson::SUCCESS)
      return from_simdjson(simdjson::TRAILING_CONTENT, id.empty() ? id_of(object) : id);
  }
  if (id.empty() && (e == simdjson::UTF8_ERROR || e == simdjson::UNESCAPED_CHARS))
    return from_simdjson(e, sound_id(validator, input));
  return from_simdjson(e, id.empty() ? leading_id(validator, input) : id);
}

std::string whole_object_id(simdjson::dom::parser& validator, std::string_view input) {
  simdjson::dom::element root;
  if (validator.parse(input.data(), input.size(), false).get(root) != simdjson::SUCCESS) return {};
  return std::string(id_of(root));
}

}  // namespace

std::variant<Comment, DecodeError> Decoder::decode_copy(std::string_view input) {
  impl_->copy.assign(input);
  impl_->copy.append(simdjson::SIMDJSON_PADDING, ' ');
  return decode(std::string_view(impl_->copy.data(), input.size()));
}

std::variant<Comment, DecodeError> Decoder::decode(std::string_view input) {
  if (!input.empty() && input.back() == '\r') input.remove_suffix(1);  // before the limit: it is no content
  if (input.size() > options_.max_bytes)
    return error(DecodeErrorCode::line_too_long,
                 fmt::format("input is {} bytes, over the limit of {}", input.size(), options_.max_bytes));
  if (input.size() >= 3 && input.substr(0, 3) == "\xEF\xBB\xBF") input.remove_prefix(3);
  if (input.find_first_not_of(" \t\r") == std::string_view::npos)
    return error(DecodeErrorCode::empty_line, "empty input");

  od::document doc;
  if (auto e = impl_->parser.iterate(input.data(), input.size(), input.size() + simdjson::SIMDJSON_PADDING)
                   .get(doc))
    return diagnose(impl_->validator, input, e, {});
  od::json_type root_type;
  if (auto e = doc.type().get(root_type)) return diagnose(impl_->validator, input, e, {});
  od::object obj;
  if (root_type != od::json_type::object) return diagnose(impl_->validator, input, simdjson::INCORRECT_TYPE, {});
  if (auto e = doc.get_object().get(obj)) return diagnose(impl_->validator, input, e, {});

  Comment c;
  bool has_id = false, has_tenant = false, has_text = false, has_direction = false, has_ts = false;
  std::string_view direction;
  // An error met after the id has been read names it, so the record can be traced.
  const auto id_so_far = [&] { return has_id ? c.id : std::string_view{}; };
  // A field read twice would leave the last value in force while other readers of
  // the same record take the first ("text" once harmless, then a threat): refused.
  unsigned fields_seen = 0;
  auto string_field = [&](od::value v, std::string_view& out, bool& present, DecodeErrorCode not_string,
                          std::string_view name, unsigned field_bit, bool optional = true) -> std::optional<DecodeError> {
    if (fields_seen & field_bit)
      return error(DecodeErrorCode::invalid_field, fmt::format("field \"{}\" appears more than once", name), id_so_far());
    fields_seen |= field_bit;
    od::json_type t;
    if (auto e = v.type().get(t)) return diagnose(impl_->validator, input, e, id_so_far());
    if (optional && t == od::json_type::null) {  // an optional field set to null is absent
      // The type comes from the first byte alone: "nope" is no null.
      bool is_null = false;
      if (auto e = v.is_null().get(is_null)) return diagnose(impl_->validator, input, e, id_so_far());
      if (!is_null) return diagnose(impl_->validator, input, simdjson::N_ATOM_ERROR, id_so_far());
      return std::nullopt;
    }
    if (t != od::json_type::string)
      return error(not_string, fmt::format("field \"{}\" must be a string", name), id_so_far());
    if (auto e = v.get_string().get(out)) return diagnose(impl_->validator, input, e, id_so_far());
    present = true;
    return std::nullopt;
  };

  for (auto result : obj) {
    od::field field;
    if (auto e = std::move(result).get(field)) return diagnose(impl_->validator, input, e, id_so_far());
    // Keys are read in place; only one holding an escape (legal, never seen in
    // practice) is unescaped, which costs a copy.
    std::string_view key = raw_key(field.key());
    if (key.data() == nullptr && field.unescaped_key().get(key) != simdjson::SUCCESS)
      return diagnose(impl_->validator, input, simdjson::STRING_ERROR, id_so_far());
    od::value v = field.value();
    std::optional<DecodeError> r;
    bool unused = false;
    if (key == "id") {
      r = string_field(v, c.id, has_id, DecodeErrorCode::id_not_string, key, 1u << 0, false);
    } else if (key == "tenant") {
      // With a default tenant the field is optional, and null, as for any optional field, absent.
      r = string_field(v, c.tenant, has_tenant, DecodeErrorCode::tenant_not_string, key, 1u << 1,
                       !options_.default_tenant.empty());
    } else if (key == "text") {
      r = string_field(v, c.text, has_text, DecodeErrorCode::text_not_string, key, 1u << 2, false);
    } else if (key == "author") {
      r = string_field(v, c.author, unused, DecodeErrorCode::invalid_field, key, 1u << 3);
    } else if (key == "thread") {
      r = string_field(v, c.thread, unused, DecodeErrorCode::invalid_field, key, 1u << 4);
    } else if (key == "channel") {
      r = string_field(v, c.channel, unused, DecodeErrorCode::invalid_field, key, 1u << 5);
    } else if (key == "ts") {
      r = string_field(v, c.ts, has_ts, DecodeErrorCode::invalid_field, key, 1u << 6);
    } else if (key == "direction") {
      r = string_field(v, direction, has_direction, DecodeErrorCode::invalid_field, key, 1u << 7);
    } else if (auto e = skip_value(v, 2, options_.max_depth)) {
      return diagnose(impl_->validator, input, e, id_so_far());
    }
    if (r) {
      if (!has_id) r->id = whole_object_id(impl_->validator, input);
      return std::move(*r);
    }
  }
  // Anything left after the object is garbage ("{...} trailing", "{...}{...}").
  if (const char* where = nullptr; doc.current_location().get(where) == simdjson::SUCCESS)
    return error(DecodeErrorCode::trailing_garbage, "unexpected content after the JSON object", id_so_far());

  if (!has_id) return error(DecodeErrorCode::missing_id, "field \"id\" is required");
  if (c.id.empty()) return error(DecodeErrorCode::empty_id, "field \"id\" must not be empty");
  if (!has_tenant) {
    if (options_.default_tenant.empty())
      return error(DecodeErrorCode::missing_tenant, "field \"tenant\" is required (or pass --tenant)", c.id);
    c.tenant = options_.default_tenant;
  }
  if (!has_text) return error(DecodeErrorCode::missing_text, "field \"text\" is required", c.id);
  if (has_ts) {
    // A date alone is not a moment (midnight where?), and "" is not a time at all.
    const auto ms = c.ts.size() > 10 ? parse_timestamp_ms(c.ts) : std::nullopt;
    if (!ms) return error(DecodeErrorCode::invalid_field, "field \"ts\" must be an RFC 3339 date-time", c.id);
    c.ts_ms = *ms;
  }
  if (direction == "outbound") {
    c.direction = Direction::outbound;
  } else if (has_direction && direction != "inbound") {
    return error(DecodeErrorCode::invalid_field, "field \"direction\" must be \"inbound\" or \"outbound\"", c.id);
  }
  return c;
}

}  // namespace civicsift
