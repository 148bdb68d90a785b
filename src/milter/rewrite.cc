// Header section splitting and milter header changes (see rewrite.h).
#include "milter/rewrite.h"

#include <cctype>

namespace tern::milter {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

}  // namespace

std::vector<HeaderField> split_header_section(std::string_view section) {
  std::vector<HeaderField> fields;
  size_t pos = 0;
  while (pos < section.size()) {
    size_t end = section.find("\r\n", pos);
    std::string_view line = section.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    size_t next = end == std::string_view::npos ? section.size() : end + 2;
    if (line.empty()) break;  // the empty line ending the section
    bool continuation = line[0] == ' ' || line[0] == '\t';
    size_t colon = line.find(':');
    if (continuation && !fields.empty()) {
      fields.back().value += "\r\n";
      fields.back().value += line;
    } else if (colon != std::string_view::npos) {
      fields.push_back(HeaderField{std::string(line.substr(0, colon)), std::string(line.substr(colon + 1))});
    } else {
      fields.push_back(HeaderField{"", std::string(line)});  // not a field: kept verbatim
    }
    pos = next;
  }
  return fields;
}

std::string join_header_section(const std::vector<HeaderField>& fields) {
  std::string out;
  for (const auto& f : fields) {
    if (!f.name.empty()) {
      out += f.name;
      out += ':';
    }
    out += f.value;
    out += "\r\n";
  }
  return out;
}

std::string header_value_from_milter(std::string_view value) {
  std::string out;
  if (value.empty() || (value[0] != ' ' && value[0] != '\t')) out.push_back(' ');
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\n' && (i == 0 || value[i - 1] != '\r')) out.push_back('\r');
    out.push_back(value[i]);
  }
  return out;
}

void apply_header_changes(std::vector<HeaderField>& fields, const std::vector<Modification>& modifications) {
  for (const auto& m : modifications) {
    switch (m.kind) {
      case Modification::Kind::kAddHeader:
        fields.push_back(HeaderField{m.name, header_value_from_milter(m.value)});
        break;
      case Modification::Kind::kInsertHeader: {
        size_t at = m.index < fields.size() ? m.index : fields.size();
        fields.insert(fields.begin() + static_cast<std::ptrdiff_t>(at),
                      HeaderField{m.name, header_value_from_milter(m.value)});
        break;
      }
      case Modification::Kind::kChangeHeader: {
        // Sendmail counts occurrences from 1; index 0 is treated as 1.
        uint32_t wanted = m.index == 0 ? 1 : m.index;
        uint32_t seen = 0;
        bool done = false;
        for (size_t i = 0; i < fields.size() && !done; ++i) {
          if (!iequals(fields[i].name, m.name) || ++seen != wanted) continue;
          if (m.value.empty()) {
            fields.erase(fields.begin() + static_cast<std::ptrdiff_t>(i));
          } else {
            fields[i].value = header_value_from_milter(m.value);
          }
          done = true;
        }
        if (!done && !m.value.empty()) fields.push_back(HeaderField{m.name, header_value_from_milter(m.value)});
        break;
      }
      default:
        break;
    }
  }
}

std::string unbracket_address(std::string_view address) {
  if (address.size() >= 2 && address.front() == '<' && address.back() == '>') {
    return std::string(address.substr(1, address.size() - 2));
  }
  return std::string(address);
}

}  // namespace tern::milter
