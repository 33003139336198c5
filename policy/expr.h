// SPDX-License-Identifier: Apache-2.0
#pragma once

/// The `when` expression language, compiled once when a policy is loaded.
///
///   expr       := or
///   or         := and ( "||" and )*
///   and        := unary ( "&&" unary )*
///   unary      := "!" unary | "(" expr ")" | comparison
///   comparison := operand ( "<" | "<=" | ">" | ">=" | "==" | "!=" ) operand
///   operand    := variable | number [unit] | 'string' | "string"
///
/// Evaluation is three-valued: a comparison that reads an unavailable variable
/// is *unknown*. `!unknown` is unknown, `unknown && false` is false,
/// `unknown || true` is true, and a rule whose condition ends unknown does not
/// match. So a missing telemetry source can never make a condition true.
///
/// Limits keep evaluation bounded whatever the text: at most kMaxNesting levels
/// of parentheses and `!`, and at most kMaxComparisons comparisons. A chain of
/// `||` (or `&&`) terms is one node with many children, so evaluation recurses
/// only as deep as the nesting, never as long as the chain.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/variables.h"

namespace daxpolicy::policy {

inline constexpr int kMaxNesting = 64;
inline constexpr size_t kMaxComparisons = 1000;

enum class Tri : uint8_t { kFalse, kTrue, kUnknown };
std::string_view TriName(Tri t);

enum class CmpOp : uint8_t { kLt, kLe, kGt, kGe, kEq, kNe };
std::string_view CmpOpText(CmpOp op);
bool Compare(double a, CmpOp op, double b);

struct ExprError {
  size_t offset = 0;  // 0-based byte offset into the expression text
  std::string message;
};

// One comparison as evaluated for explain.
struct ComparisonTrace {
  std::string text;  // source text of the comparison
  Tri result = Tri::kUnknown;
  std::string lhs_value;  // rendered live value, or "unavailable"
  std::string rhs_value;
  std::string unavailable;  // "<variable>: <why>" when result is unknown
};

class Expr {
 public:
  // Parses and type-checks. On failure returns nullopt and appends every error found.
  static std::optional<Expr> Compile(std::string_view text, std::vector<ExprError>* errors);

  Tri Eval(const VarContext& ctx) const { return EvalNode(root_, ctx, nullptr); }
  // Evaluates every comparison (no short-circuit) and records each one.
  Tri EvalTraced(const VarContext& ctx, std::vector<ComparisonTrace>* trace) const {
    return EvalNode(root_, ctx, trace);
  }
  const std::string& text() const { return text_; }
  bool Uses(Var var) const;
  // Appends the constants `var` is compared with; false when it is compared
  // with another variable (no fixed threshold).
  bool Thresholds(Var var, std::vector<double>* out) const;

 private:
  struct Operand {
    bool is_var = false;
    Var var = Var::kCount;
    double value = 0;
  };
  struct Node {
    enum Kind : uint8_t { kAnd, kOr, kNot, kCmp } kind = kCmp;
    CmpOp op = CmpOp::kEq;
    ValueKind value_kind = ValueKind::kCount;  // for rendering comparison operands
    int lhs = -1;                              // kNot: the operand
    uint32_t first = 0, count = 0;             // kAnd, kOr: operands are children_[first, +count)
    Operand a, b;                              // kCmp operands
    uint32_t offset = 0, length = 0;           // kCmp source span
  };
  friend class ExprParser;

  Tri EvalNode(int index, const VarContext& ctx, std::vector<ComparisonTrace>* trace) const;
  Tri EvalCmp(const Node& n, const VarContext& ctx, std::vector<ComparisonTrace>* trace) const;

  std::string text_;
  std::vector<Node> nodes_;
  std::vector<int> children_;  // operands of kAnd and kOr nodes, in source order
  int root_ = -1;
};

}  // namespace daxpolicy::policy
