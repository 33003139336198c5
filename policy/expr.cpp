// SPDX-License-Identifier: Apache-2.0
#include "policy/expr.h"

#include <algorithm>
#include <cctype>

#include "policy/units.h"

namespace daxpolicy::policy {

std::string_view TriName(Tri t) {
  switch (t) {
    case Tri::kTrue:
      return "true";
    case Tri::kFalse:
      return "false";
    case Tri::kUnknown:
      return "unknown";
  }
  return "?";
}

std::string_view CmpOpText(CmpOp op) {
  switch (op) {
    case CmpOp::kLt:
      return "<";
    case CmpOp::kLe:
      return "<=";
    case CmpOp::kGt:
      return ">";
    case CmpOp::kGe:
      return ">=";
    case CmpOp::kEq:
      return "==";
    case CmpOp::kNe:
      return "!=";
  }
  return "?";
}

bool Compare(double a, CmpOp op, double b) {
  switch (op) {
    case CmpOp::kLt:
      return a < b;
    case CmpOp::kLe:
      return a <= b;
    case CmpOp::kGt:
      return a > b;
    case CmpOp::kGe:
      return a >= b;
    case CmpOp::kEq:
      return a == b;
    case CmpOp::kNe:
      return a != b;
  }
  return false;
}

namespace {

enum class Tok : uint8_t {
  kEnd,
  kIdent,
  kNumber,
  kString,
  kAnd,
  kOr,
  kNot,
  kCmp,
  kLParen,
  kRParen
};

struct Token {
  Tok kind = Tok::kEnd;
  CmpOp op = CmpOp::kEq;
  size_t offset = 0;
  size_t length = 0;
  std::string text;  // identifier name, number text, or string contents
};

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string Suggest(std::string_view name) {
  std::string_view best;
  size_t best_d = 4;
  for (const VarInfo& v : AllVariables()) {
    size_t d = EditDistance(name, v.name);
    if (d < best_d) {
      best_d = d;
      best = v.name;
    }
  }
  return best.empty() ? "" : " (did you mean '" + std::string(best) + "'?)";
}

bool IsIdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
}

}  // namespace

class ExprParser {
 public:
  ExprParser(std::string_view text, std::vector<ExprError>* errors)
      : text_(text), errors_(errors) {}

  std::optional<Expr> Run() {
    expr_.text_ = std::string(text_);
    if (!Lex()) return std::nullopt;
    if (tokens_.size() == 1) {
      Error(0, "empty expression");
      return std::nullopt;
    }
    int root = ParseOr();
    if (root >= 0 && Peek().kind != Tok::kEnd) {
      Error(Peek().offset, "unexpected '" + TokText(Peek()) + "' after a complete expression");
      root = -1;
    }
    if (root < 0 || semantic_errors_ > 0) return std::nullopt;
    expr_.root_ = root;
    return std::move(expr_);
  }

 private:
  void Error(size_t offset, std::string message) {
    errors_->push_back(ExprError{offset, std::move(message)});
  }

  std::string TokText(const Token& t) const {
    if (t.kind == Tok::kEnd) return "end of expression";
    return std::string(text_.substr(t.offset, t.length));
  }

  bool Lex() {
    size_t i = 0;
    while (i < text_.size()) {
      char c = text_[i];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++i;
        continue;
      }
      Token t;
      t.offset = i;
      auto two = [&](char next) { return i + 1 < text_.size() && text_[i + 1] == next; };
      if (c == '&' && two('&')) {
        t.kind = Tok::kAnd;
        i += 2;
      } else if (c == '|' && two('|')) {
        t.kind = Tok::kOr;
        i += 2;
      } else if (c == '(' || c == ')') {
        t.kind = c == '(' ? Tok::kLParen : Tok::kRParen;
        ++i;
      } else if (c == '<' || c == '>') {
        t.kind = Tok::kCmp;
        bool eq = two('=');
        t.op = c == '<' ? (eq ? CmpOp::kLe : CmpOp::kLt) : (eq ? CmpOp::kGe : CmpOp::kGt);
        i += eq ? 2 : 1;
      } else if (c == '=' && two('=')) {
        t.kind = Tok::kCmp;
        t.op = CmpOp::kEq;
        i += 2;
      } else if (c == '!') {
        if (two('=')) {
          t.kind = Tok::kCmp;
          t.op = CmpOp::kNe;
          i += 2;
        } else {
          t.kind = Tok::kNot;
          ++i;
        }
      } else if (c == '&' || c == '|' || c == '=') {
        std::string want = c == '&' ? "&&" : c == '|' ? "||" : "==";
        Error(i, "unexpected '" + std::string(1, c) + "' (did you mean '" + want + "'?)");
        return false;
      } else if (c == '\'' || c == '"') {
        size_t end = text_.find(c, i + 1);
        if (end == std::string_view::npos) {
          Error(i, "unterminated string");
          return false;
        }
        t.kind = Tok::kString;
        t.text = std::string(text_.substr(i + 1, end - i - 1));
        i = end + 1;
      } else if (std::isdigit(static_cast<unsigned char>(c)) ||
                 (c == '.' && i + 1 < text_.size() &&
                  std::isdigit(static_cast<unsigned char>(text_[i + 1])))) {
        size_t j = i;
        while (j < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[j])) ||
                                    text_[j] == '.' || text_[j] == '%' || text_[j] == '/')) {
          ++j;
        }
        t.kind = Tok::kNumber;
        t.text = std::string(text_.substr(i, j - i));
        i = j;
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t j = i;
        while (j < text_.size() && IsIdentChar(text_[j])) ++j;
        t.kind = Tok::kIdent;
        t.text = std::string(text_.substr(i, j - i));
        i = j;
      } else {
        Error(i, "unexpected character '" + std::string(1, c) + "'");
        return false;
      }
      t.length = i - t.offset;
      tokens_.push_back(std::move(t));
    }
    Token end;
    end.offset = text_.size();
    tokens_.push_back(end);
    return true;
  }

  const Token& Peek() const { return tokens_[pos_]; }
  const Token& Next() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }

  int Add(Expr::Node n) {
    expr_.nodes_.push_back(n);
    return static_cast<int>(expr_.nodes_.size() - 1);
  }

  // A chain "a || b || c" is one node with three operands (likewise "&&"), so
  // no chain length makes evaluation recurse deeper.
  int ParseOr() { return ParseChain(Tok::kOr, Expr::Node::kOr); }
  int ParseAnd() { return ParseChain(Tok::kAnd, Expr::Node::kAnd); }

  int ParseChain(Tok op, Expr::Node::Kind kind) {
    std::vector<int> operands;
    for (;;) {
      int operand = kind == Expr::Node::kOr ? ParseAnd() : ParseUnary();
      if (operand < 0) return -1;
      operands.push_back(operand);
      if (Peek().kind != op) break;
      Next();
    }
    if (operands.size() == 1) return operands[0];
    Expr::Node n;
    n.kind = kind;
    n.first = static_cast<uint32_t>(expr_.children_.size());
    n.count = static_cast<uint32_t>(operands.size());
    expr_.children_.insert(expr_.children_.end(), operands.begin(), operands.end());
    return Add(n);
  }

  int ParseUnary() {
    if (++depth_ > kMaxNesting) {
      Error(Peek().offset,
            "expression nests too deeply (more than " + std::to_string(kMaxNesting) + " levels)");
      return -1;
    }
    int result;
    if (Peek().kind == Tok::kNot) {
      Next();
      int inner = ParseUnary();
      if (inner < 0) {
        result = -1;
      } else {
        Expr::Node n;
        n.kind = Expr::Node::kNot;
        n.lhs = inner;
        result = Add(n);
      }
    } else if (Peek().kind == Tok::kLParen) {
      const Token& open = Next();
      result = ParseOr();
      if (result >= 0) {
        if (Peek().kind != Tok::kRParen) {
          Error(Peek().offset, "expected ')' to close '(' at offset " +
                                   std::to_string(open.offset + 1) + ", found '" + TokText(Peek()) +
                                   "'");
          result = -1;
        } else {
          Next();
        }
      }
    } else {
      result = ParseComparison();
    }
    --depth_;
    return result;
  }

  // An operand's meaning before type checking.
  struct RawOperand {
    enum { kVar, kNumber, kString } kind;
    Var var = Var::kCount;
    Quantity quantity;
    std::string text;
    size_t offset = 0;
    bool ok = true;
  };

  std::optional<RawOperand> ParseOperand() {
    const Token& t = Peek();
    RawOperand o;
    o.offset = t.offset;
    o.text = TokText(t);
    switch (t.kind) {
      case Tok::kIdent: {
        Next();
        o.kind = RawOperand::kVar;
        auto var = VarByName(t.text);
        if (!var) {
          Error(t.offset, "unknown variable '" + t.text + "'" + Suggest(t.text));
          ++semantic_errors_;
          o.ok = false;
        } else {
          o.var = *var;
        }
        return o;
      }
      case Tok::kNumber: {
        Next();
        o.kind = RawOperand::kNumber;
        std::string error;
        auto q = ParseQuantity(t.text, &error);
        if (!q) {
          Error(t.offset, error);
          ++semantic_errors_;
          o.ok = false;
        } else {
          o.quantity = *q;
        }
        return o;
      }
      case Tok::kString:
        Next();
        o.kind = RawOperand::kString;
        o.text = t.text;
        return o;
      default:
        Error(t.offset, "expected a variable, number or string, found '" + TokText(t) + "'");
        return std::nullopt;
    }
  }

  int ParseComparison() {
    size_t start = Peek().offset;
    if (++comparisons_ > kMaxComparisons) {
      Error(start, "expression has more than " + std::to_string(kMaxComparisons) +
                       " comparisons; split it into several rules");
      return -1;
    }
    auto lhs = ParseOperand();
    if (!lhs) return -1;
    if (Peek().kind != Tok::kCmp) {
      if (lhs->kind == RawOperand::kVar) {
        Error(Peek().offset, "expected a comparison (<, <=, >, >=, ==, !=) after '" + lhs->text +
                                 "', found '" + TokText(Peek()) + "'");
      } else {
        Error(Peek().offset, "expected a comparison operator after '" + lhs->text + "', found '" +
                                 TokText(Peek()) + "'");
      }
      return -1;
    }
    CmpOp op = Next().op;
    auto rhs = ParseOperand();
    if (!rhs) return -1;
    size_t end = tokens_[pos_ - 1].offset + tokens_[pos_ - 1].length;
    if (Peek().kind == Tok::kCmp) {
      Error(Peek().offset, "comparisons cannot be chained; combine them with '&&'");
      return -1;
    }
    Expr::Node n;
    n.kind = Expr::Node::kCmp;
    n.op = op;
    n.offset = static_cast<uint32_t>(start);
    n.length = static_cast<uint32_t>(end - start);
    if (lhs->ok && rhs->ok) TypeCheck(*lhs, op, *rhs, &n);
    return Add(n);
  }

  // Converts a literal to the variable's unit; returns false after reporting an error.
  bool Convert(const VarInfo& info, CmpOp op, const RawOperand& lit, double* out) {
    auto fail = [&](const std::string& msg) {
      Error(lit.offset, msg);
      ++semantic_errors_;
      return false;
    };
    const std::string var = std::string(info.name);
    if (lit.kind == RawOperand::kString) {
      if (info.kind != ValueKind::kHealth) {
        return fail("'" + var + "' is " + std::string(KindName(info.kind)) +
                    " and cannot be compared with the string '" + lit.text + "'");
      }
      if (op != CmpOp::kEq && op != CmpOp::kNe) {
        return fail("'" + var + "' can only be compared with == or !=");
      }
      auto h = HealthByName(lit.text);
      if (!h) {
        return fail("unknown health state '" + lit.text +
                    "' (expected ok, warning, critical or unknown)");
      }
      *out = *h;
      return true;
    }
    if (lit.kind == RawOperand::kVar) return false;  // handled by the caller
    const Quantity& q = lit.quantity;
    auto wrong_unit = [&]() {
      return fail("'" + var + "' is " + std::string(KindName(info.kind)) + ", but '" + lit.text +
                  "' is not");
    };
    switch (info.kind) {
      case ValueKind::kHealth:
        return fail("'" + var + "' is a health state: compare it with a string such as 'ok'");
      case ValueKind::kSize:
        if (q.kind != UnitKind::kSize && q.kind != UnitKind::kNone) return wrong_unit();
        *out = q.value;
        return true;
      case ValueKind::kDuration:
        if (q.kind == UnitKind::kNone) {
          return fail("'" + lit.text + "' needs a duration unit to compare with '" + var +
                      "' (e.g. 10m)");
        }
        if (q.kind != UnitKind::kDuration) return wrong_unit();
        *out = q.value;
        return true;
      case ValueKind::kLatency:
        if (q.kind != UnitKind::kDuration && q.kind != UnitKind::kNone) return wrong_unit();
        *out = q.value;
        return true;
      case ValueKind::kRatio:
        if (q.kind == UnitKind::kPercent) {
          if (q.value > 100) return fail("percentage '" + lit.text + "' is above 100%");
          *out = q.value / 100;
          return true;
        }
        if (q.kind != UnitKind::kNone) return wrong_unit();
        if (q.value > 1) {
          return fail("'" + var + "' is a ratio between 0 and 1, but '" + lit.text +
                      "' is larger (write 0.8 or 80%)");
        }
        *out = q.value;
        return true;
      case ValueKind::kPercent:
        if (q.kind != UnitKind::kPercent && q.kind != UnitKind::kNone) return wrong_unit();
        if (q.value > 100)
          return fail("'" + var + "' is a percentage, '" + lit.text + "' is above 100");
        *out = q.value;
        return true;
      case ValueKind::kRate:
        if (q.kind != UnitKind::kRate && q.kind != UnitKind::kNone) return wrong_unit();
        *out = q.value;
        return true;
      case ValueKind::kFactor:
      case ValueKind::kCount:
        if (q.kind != UnitKind::kNone) return wrong_unit();
        *out = q.value;
        return true;
    }
    return false;
  }

  void TypeCheck(const RawOperand& lhs, CmpOp op, const RawOperand& rhs, Expr::Node* n) {
    bool lvar = lhs.kind == RawOperand::kVar, rvar = rhs.kind == RawOperand::kVar;
    if (!lvar && !rvar) {
      Error(lhs.offset, "comparison of two constants ('" + lhs.text + "' and '" + rhs.text +
                            "'): one side must be a variable");
      ++semantic_errors_;
      return;
    }
    if (lvar && rvar) {
      const VarInfo& a = InfoOf(lhs.var);
      const VarInfo& b = InfoOf(rhs.var);
      if (a.kind != b.kind) {
        Error(rhs.offset, "cannot compare '" + std::string(a.name) + "' (" +
                              std::string(KindName(a.kind)) + ") with '" + std::string(b.name) +
                              "' (" + std::string(KindName(b.kind)) + ")");
        ++semantic_errors_;
        return;
      }
      if (a.kind == ValueKind::kHealth && op != CmpOp::kEq && op != CmpOp::kNe) {
        Error(lhs.offset, "'" + std::string(a.name) + "' can only be compared with == or !=");
        ++semantic_errors_;
        return;
      }
      n->a = {true, lhs.var, 0};
      n->b = {true, rhs.var, 0};
      n->value_kind = a.kind;
      return;
    }
    const RawOperand& var = lvar ? lhs : rhs;
    const RawOperand& lit = lvar ? rhs : lhs;
    const VarInfo& info = InfoOf(var.var);
    double value = 0;
    if (!Convert(info, op, lit, &value)) return;
    Expr::Operand v{true, var.var, 0};
    Expr::Operand c{false, Var::kCount, value};
    n->a = lvar ? v : c;
    n->b = lvar ? c : v;
    n->value_kind = info.kind;
  }

  std::string_view text_;
  std::vector<ExprError>* errors_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  size_t comparisons_ = 0;
  int semantic_errors_ = 0;
  Expr expr_;
};

std::optional<Expr> Expr::Compile(std::string_view text, std::vector<ExprError>* errors) {
  return ExprParser(text, errors).Run();
}

bool Expr::Uses(Var var) const {
  for (const Node& n : nodes_) {
    if (n.kind == Node::kCmp &&
        ((n.a.is_var && n.a.var == var) || (n.b.is_var && n.b.var == var))) {
      return true;
    }
  }
  return false;
}

bool Expr::Thresholds(Var var, std::vector<double>* out) const {
  for (const Node& n : nodes_) {
    if (n.kind != Node::kCmp) continue;
    const bool a = n.a.is_var && n.a.var == var;
    const bool b = n.b.is_var && n.b.var == var;
    if (!a && !b) continue;
    if (n.a.is_var && n.b.is_var) return false;
    out->push_back(a ? n.b.value : n.a.value);
  }
  return true;
}

Tri Expr::EvalNode(int index, const VarContext& ctx, std::vector<ComparisonTrace>* trace) const {
  const Node& n = nodes_[static_cast<size_t>(index)];
  switch (n.kind) {
    case Node::kCmp:
      return EvalCmp(n, ctx, trace);
    case Node::kNot: {
      Tri t = EvalNode(n.lhs, ctx, trace);
      return t == Tri::kUnknown ? t : (t == Tri::kTrue ? Tri::kFalse : Tri::kTrue);
    }
    case Node::kAnd:
    case Node::kOr: {
      // Three-valued: the dominant value (false for &&, true for ||) decides;
      // otherwise any unknown operand makes the result unknown. Untraced
      // evaluation stops at the dominant value; traced evaluation records every
      // comparison.
      const Tri dominant = n.kind == Node::kAnd ? Tri::kFalse : Tri::kTrue;
      const Tri neutral = n.kind == Node::kAnd ? Tri::kTrue : Tri::kFalse;
      Tri result = neutral;
      for (uint32_t i = 0; i < n.count; ++i) {
        Tri t = EvalNode(children_[n.first + i], ctx, trace);
        if (t == dominant) {
          result = dominant;
          if (trace == nullptr) break;
        } else if (t == Tri::kUnknown && result != dominant) {
          result = Tri::kUnknown;
        }
      }
      return result;
    }
  }
  return Tri::kUnknown;
}

Tri Expr::EvalCmp(const Node& n, const VarContext& ctx, std::vector<ComparisonTrace>* trace) const {
  std::string_view why_a, why_b;
  std::optional<double> a = n.a.is_var ? ReadVar(n.a.var, ctx, &why_a) : n.a.value;
  std::optional<double> b = n.b.is_var ? ReadVar(n.b.var, ctx, &why_b) : n.b.value;
  Tri result = (a && b) ? (Compare(*a, n.op, *b) ? Tri::kTrue : Tri::kFalse) : Tri::kUnknown;
  if (trace != nullptr) {
    ComparisonTrace t;
    t.text = text_.substr(n.offset, n.length);
    t.result = result;
    t.lhs_value = a ? FormatValue(n.value_kind, *a) : "unavailable";
    t.rhs_value = b ? FormatValue(n.value_kind, *b) : "unavailable";
    if (!a) t.unavailable = std::string(InfoOf(n.a.var).name) + ": " + std::string(why_a);
    if (!b) {
      if (!t.unavailable.empty()) t.unavailable += "; ";
      t.unavailable += std::string(InfoOf(n.b.var).name) + ": " + std::string(why_b);
    }
    trace->push_back(std::move(t));
  }
  return result;
}

}  // namespace daxpolicy::policy
