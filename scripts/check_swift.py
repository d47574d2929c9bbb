#!/usr/bin/env python3
"""What can be checked of the iOS side without Swift (scripts/check-swift.sh runs this).

  check_swift.py GENERATED_DIR [--root REPO]     the checks below; exit 1 on any failure
  check_swift.py GENERATED_DIR --self-test       shows that broken copies of the tree fail

1. Syntax: every Swift file (the generated bindings in GENERATED_DIR/swift and everything under
   ios/) parses with tree-sitter-swift.
2. API: hand-written Swift uses only what the generated Swift declares. Checked exactly: members
   of values whose type is a generated type (methods, properties, enum cases, argument labels),
   calls of generated functions and initialisers, enum case patterns and their arity, implicit
   `.case(...)` arguments of generated calls, key paths on generated types, conformances to
   generated protocols. A name that is neither declared by hand nor generated but within a typo
   of a generated name is reported too. Apple's names are never looked up: what is not generated
   and not a near miss is left to the compiler.
3. Names: uniffi.toml's Swift names, the generated files, ios/build-xcframework.sh --names and
   ios/MeshdropKit/Package.swift agree (one name for the C module, binary target and
   xcframework); no `.macOS` platform without a macOS slice; imports name known modules.
4. App bundle: the plists and entitlements parse, and the identifiers the Swift uses (app group,
   background task, the link service's Bonjour type, its Wi-Fi Aware service and the entitlement
   to publish and subscribe it) are the ones they declare.
"""

import argparse
import plistlib
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import tree_sitter
import tree_sitter_swift

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))

# Modules hand-written code may import: Apple's (those the sources use; add one when needed) and
# the package's own targets (added at run time).
APPLE_MODULES = {
    "BackgroundTasks", "Combine", "CoreTransferable", "Darwin", "DeviceDiscoveryUI", "Foundation", "Network", "os",
    "PackageDescription", "Photos", "PhotosUI", "SwiftUI", "UIKit", "UniformTypeIdentifiers", "WiFiAware",
    "dnssd",
}

# Array methods whose closure gets elements, and those that return an array of the same elements:
# enough to follow `peers.filter { $0.connected }` and `ForEach(offer.files.prefix(10)) { f in ... }`.
ELEMENT_CLOSURES = {
    "allSatisfy", "compactMap", "contains", "drop", "filter", "first", "firstIndex", "flatMap",
    "forEach", "last", "lastIndex", "map", "max", "min", "prefix", "removeAll", "sorted",
}
SAME_ARRAY = {"dropFirst", "dropLast", "filter", "prefix", "reversed", "shuffled", "sorted", "suffix"}
# SwiftUI views that take a collection and a closure of its elements.
ELEMENT_VIEWS = {"ForEach", "List", "Table"}
# Members every value has (Equatable / Hashable / Error / CustomStringConvertible conformances).
UNIVERSAL_MEMBERS = {"self", "hashValue", "hash", "localizedDescription", "description", "debugDescription"}


class Failure(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Parsing

# Valid Swift that tree-sitter-swift 0.7.4 does not parse, rewritten (same length, so positions
# stay) before parsing:
# - `#if` ... `#endif` lines: the grammar takes directives as extras and fails when one holds only
#   attributes (SE-0367, e.g. `#if swift(>=5.8) @_documentation(...) #endif` before a member).
#   Each branch must be whole declarations or statements, so parsing their union checks them.
# - the empty tuple as an expression (`{ () }`, `return ()`): the grammar has no such expression;
#   it becomes an identifier of the same width.
DIRECTIVE = re.compile(r"^[ \t]*#(?:if|elseif|else|endif)\b.*$", re.M)
EMPTY_TUPLE = re.compile(r"([{=(,]|\breturn)(\s*)\(\)(?!\s*(?:throws|async|->|in\b))")


def parse(path):
    text = path.read_text(encoding="utf-8")
    text = DIRECTIVE.sub(lambda m: " " * len(m.group(0)), text)
    text = EMPTY_TUPLE.sub(lambda m: m.group(1) + m.group(2) + "__", text)
    source = text.encode()
    return source, PARSER.parse(source)


def syntax_errors(path, source, tree):
    errors = []

    def walk(node):
        if node.is_error or node.is_missing:
            line, col = node.start_point
            what = f"missing {node.type}" if node.is_missing else "syntax error"
            snippet = source.splitlines()[line].decode(errors="replace").strip() if line < len(source.splitlines()) else ""
            errors.append(f"{path}:{line + 1}:{col + 1}: {what}: {snippet}")
            return
        if node.has_error:
            for child in node.children:
                walk(child)

    walk(tree.root_node)
    return errors


def text(source, node):
    return source[node.start_byte:node.end_byte].decode()


def named(node, *types):
    return [c for c in node.children if c.is_named and (not types or c.type in types)]


def field_children(node, name):
    return [c for i, c in enumerate(node.children) if node.field_name_for_child(i) == name]


# ---------------------------------------------------------------------------------------------
# Types: ("named", name) | ("opt", t) | ("array", t) | ("dict", k, v) | ("func", [params], ret)
#        | ("meta", name) for a type used as a value; None when unknown.

def type_of(source, node):
    if node is None:
        return None
    kind = node.type
    if kind == "user_type":
        ids = named(node, "type_identifier")
        return ("named", text(source, ids[-1])) if ids else None
    if kind == "optional_type":
        return ("opt", type_of(source, node.child_by_field_name("wrapped")))
    if kind == "array_type":
        return ("array", type_of(source, node.child_by_field_name("name")))
    if kind == "dictionary_type":
        key, value = field_children(node, "name")[:2]
        return ("dict", type_of(source, key), type_of(source, value))
    if kind == "function_type":
        params = node.child_by_field_name("params")
        items = named(params, "tuple_type_item") if params is not None else []
        args = [type_of(source, i.child_by_field_name("name")) for i in items]
        return ("func", args, type_of(source, node.child_by_field_name("name")))
    if kind == "type_annotation":
        return type_of(source, node.child_by_field_name("name"))
    return None


TYPE_NODES = {"user_type", "optional_type", "array_type", "dictionary_type", "function_type", "tuple_type"}


def unwrap(t):
    while t and t[0] == "opt":
        t = t[1]
    return t


# ---------------------------------------------------------------------------------------------
# Declarations

@dataclass
class Param:
    label: str | None  # None: `_`
    type: tuple | None
    default: bool = False


@dataclass
class Member:
    kind: str  # func | var | case | init
    name: str
    params: list = field(default_factory=list)  # func/init/case: [Param]
    type: tuple | None = None  # var: its type; func: the return type


@dataclass
class TypeDecl:
    name: str
    kind: str  # class | struct | enum | protocol | actor | extension (of a type declared elsewhere)
    path: str = ""  # the file that declares it
    members: dict = field(default_factory=dict)  # name -> [Member]
    inherits: list = field(default_factory=list)

    def add(self, member):
        self.members.setdefault(member.name, []).append(member)


@dataclass
class Decls:
    types: dict = field(default_factory=dict)
    functions: dict = field(default_factory=dict)  # name -> [Member]
    constants: dict = field(default_factory=dict)  # "Type.name" -> string literal value
    generics: set = field(default_factory=set)  # names of generic parameters


def visibility(source, node):
    mods = next((c for c in node.children if c.type == "modifiers"), None)
    for vis in named(mods, "visibility_modifier") if mods is not None else []:
        return text(source, vis).split("(")[0]
    return "internal"


def params_of(source, node):
    params = []
    children = node.children
    for i, c in enumerate(children):
        if c.type != "parameter":
            continue
        external = c.child_by_field_name("external_name")
        names = [x for x in field_children(c, "name") if x.type == "simple_identifier"]
        label = text(source, external) if external is not None else (text(source, names[0]) if names else None)
        if label == "_":
            label = None
        ptype = next((type_of(source, x) for x in field_children(c, "name") if x.type in TYPE_NODES), None)
        default = i + 1 < len(children) and children[i + 1].type == "="
        params.append(Param(label.strip("`") if label else None, ptype, default))
    return params


def return_type(source, node):
    arrow = False
    for c in node.children:
        if c.type == "->":
            arrow = True
        elif arrow and c.type in TYPE_NODES:
            return type_of(source, c)
    return None


def enum_case(source, entry):
    members = []
    names = [c for i, c in enumerate(entry.children) if entry.field_name_for_child(i) == "name"]
    contents = field_children(entry, "data_contents")
    for n in names:
        params = []
        if contents and n == names[-1]:
            label = None
            for c in contents[0].children:
                if c.type == "simple_identifier":
                    label = text(source, c).strip("`")
                elif c.type in TYPE_NODES:
                    params.append(Param(label, type_of(source, c)))
                    label = None
        members.append(Member("case", text(source, n).strip("`"), params))
    return members


def collect(path, source, tree, decls, public_only):
    """Adds the declarations of one file to `decls` (only public/open ones when `public_only`).
    Nested types are known by their full name (`Inbox.Batch`) and, unless taken, their own."""

    def visible(node):
        return not public_only or visibility(source, node) in ("public", "open")

    def in_body(body, decl, public):
        for m in body.children:
            if m.type == "enum_entry":
                if public or not public_only:
                    for case in enum_case(source, m):
                        decl.add(case)
            elif m.type in ("function_declaration", "protocol_function_declaration"):
                if visible(m) or (public and m.type == "protocol_function_declaration"):
                    name = m.child_by_field_name("name")
                    decl.add(Member("func", text(source, name).strip("`"), params_of(source, m), return_type(source, m)))
            elif m.type == "init_declaration":
                if visible(m):
                    decl.add(Member("init", "init", params_of(source, m), ("named", decl.name)))
            elif m.type in ("property_declaration", "protocol_property_declaration"):
                if visible(m) or (public and m.type == "protocol_property_declaration"):
                    for pattern in field_children(m, "name"):
                        bound = pattern.child_by_field_name("bound_identifier")
                        if bound is None:
                            continue
                        annotation = next((c for c in m.children if c.type == "type_annotation"), None)
                        value = m.child_by_field_name("value")
                        vtype = type_of(source, annotation) if annotation is not None else constructed(source, value)
                        decl.add(Member("var", text(source, bound).strip("`"), type=vtype))
                        if value is not None and value.type == "line_string_literal":
                            literal = "".join(text(source, t) for t in named(value, "line_str_text"))
                            decls.constants[f"{decl.name}.{text(source, bound)}"] = literal
            elif m.type in ("class_declaration", "protocol_declaration"):
                declare(m, decl.name)

    def declare(node, outer=None):
        kind_node = node.child_by_field_name("declaration_kind")
        kind = text(source, kind_node) if kind_node is not None else "protocol"
        name_node = node.child_by_field_name("name")
        name = type_of(source, name_node)[1] if name_node.type == "user_type" else text(source, name_node)
        public = visible(node)
        if not public and kind != "extension":
            return
        short = name
        if outer:
            name = f"{outer}.{name}"
        decl = decls.types.get(name)
        if decl is None:
            decl = decls.types[name] = TypeDecl(name, kind, str(path))
            if outer:
                decls.types.setdefault(short, decl)
        elif kind != "extension":
            decl.kind, decl.path = kind, str(path)
        for spec in named(node, "inheritance_specifier"):
            t = type_of(source, spec.child_by_field_name("inherits_from"))
            if t:
                decl.inherits.append(t[1])
        body = node.child_by_field_name("body")
        if body is not None:
            in_body(body, decl, public)

    def generics(node):
        if node.type == "type_parameter":
            decls.generics.update(text(source, t) for t in named(node, "type_identifier")[:1])
        for c in node.children:
            generics(c)

    generics(tree.root_node)
    for node in tree.root_node.children:
        if node.type in ("class_declaration", "protocol_declaration"):
            declare(node)
        elif node.type == "function_declaration" and visible(node):
            name = text(source, node.child_by_field_name("name"))
            decls.functions.setdefault(name, []).append(
                Member("func", name, params_of(source, node), return_type(source, node)))


def constructed(source, value):
    """The type of a stored property initialised with `T(...)`."""
    if value is None:
        return None
    if value.type == "call_expression" and value.children[0].type == "simple_identifier":
        name = text(source, value.children[0])
        return ("named", name) if name[:1].isupper() else None
    return None


# ---------------------------------------------------------------------------------------------
# Use of the generated API in hand-written code


def edit_distance(a, b):
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def near_miss(name, candidates):
    """The generated name that `name` is probably a typo of (same first letter, one edit for a
    name of up to 8 letters, two for a longer one, or only the case differs), or None."""
    if len(name) < 4:
        return None
    for c in sorted(candidates):
        if c == name or c[0].lower() != name[0].lower() or c.startswith("FfiConverter"):
            continue
        if c.lower() == name.lower() or edit_distance(c, name) <= (1 if len(c) <= 8 else 2):
            return c
    return None


def match_params(params, labels):
    """Which parameter each argument (by label; None: unlabeled) fills, skipping defaulted ones;
    None when the call does not fit."""
    filled, i = [], 0
    for label in labels:
        while i < len(params) and params[i].label != label and params[i].default:
            i += 1
        if i == len(params) or params[i].label != label:
            return None
        filled.append(i)
        i += 1
    return filled if all(p.default for p in params[i:]) else None


def labels_match(params, labels):
    return match_params(params, labels) is not None


def signature(member):
    return f"{member.name}({''.join((p.label or '_') + ':' for p in member.params)})"


def call_text(name, labels):
    return f"{name}({''.join((l or '_') + ':' for l in labels)})"


def signatures(members):
    return ", ".join(dict.fromkeys(signature(m) for m in members))


class ApiCheck:
    """Walks hand-written Swift with just enough of Swift's typing (declared types, what generated
    and hand-written functions return, pattern bindings, array elements) to know when a value has
    a generated type, and checks every use of those."""

    def __init__(self, generated, written, module):
        self.gen = generated
        self.own = written
        self.module = module
        self.errors = []
        self.checked = 0

    # -- lookups ----------------------------------------------------------------------------

    def gen_type(self, t):
        t = unwrap(t)
        if t and t[0] in ("named", "meta") and t[1] in self.gen.types and t[1] not in self.own.types:
            return self.gen.types[t[1]]
        return None

    def own_type(self, t):
        t = unwrap(t)
        if t and t[0] in ("named", "meta"):
            return self.own.types.get(t[1])
        return None

    def members(self, decl, name):
        found = list(decl.members.get(name, []))
        for parent in decl.inherits:
            if parent in self.gen.types and parent != decl.name:
                found += self.gen.types[parent].members.get(name, [])
        return found

    def lookup(self, scopes, self_type, name):
        for scope in reversed(scopes):
            if name in scope:
                return scope[name]
        own = self.own_type(self_type)
        if own:
            for m in own.members.get(name, []):
                if m.kind == "var":
                    return m.type
        if name in self.own.types or name in self.gen.types:
            return ("meta", name)
        if name == self.module:
            return ("module", name)
        return None

    def error(self, node, message):
        line, col = node.start_point
        entry = f"{self.path}:{line + 1}:{col + 1}: {message}"
        if entry not in self.errors:
            self.errors.append(entry)

    def text(self, node):
        return text(self.source, node)

    # -- files and declarations ---------------------------------------------------------------

    def check_conformances(self):
        """Hand-written types that conform to a generated protocol implement its functions."""
        for name, decl in self.own.types.items():
            if name != decl.name:
                continue
            for parent in decl.inherits:
                proto = self.gen.types.get(parent)
                if proto is None or proto.kind != "protocol" or parent in self.own.types:
                    continue
                for req in (m for ms in proto.members.values() for m in ms if m.kind == "func"):
                    self.checked += 1
                    have = [m for m in decl.members.get(req.name, []) if m.kind == "func"]
                    if not any([p.label for p in m.params] == [p.label for p in req.params] for m in have):
                        self.errors.append(f"{decl.path}: {decl.name} conforms to the generated {parent} "
                                           f"but has no {signature(req)}")

    def check_file(self, path, source, tree):
        self.path, self.source = path, source
        self.walk(tree.root_node, [{}], None)

    def walk(self, node, scopes, self_type):
        kind = node.type
        if kind in ("class_declaration", "protocol_declaration"):
            self.walk_type(node, scopes)
        elif kind in ("function_declaration", "init_declaration"):
            scope = dict(params_of_names(self.source, node))
            for child in node.children:
                if child.type in TYPE_NODES or child.type == "parameter":
                    self.walk(child, scopes, self_type)
                elif child.type == "function_body":
                    self.walk(child, scopes + [scope], self_type)
        elif kind == "lambda_literal":
            self.walk_lambda(node, scopes, self_type, [])
        elif kind == "property_declaration":
            self.walk_property(node, scopes, self_type)
        elif kind in ("if_statement", "guard_statement", "while_statement"):
            self.walk_conditional(node, scopes, self_type)
        elif kind == "for_statement":
            self.walk_for(node, scopes, self_type)
        elif kind == "switch_statement":
            self.walk_switch(node, scopes, self_type)
        elif kind == "call_expression":
            self.walk_call(node, scopes, self_type)
        elif kind == "navigation_expression":
            self.infer(node, scopes, self_type)
            self.walk(node.child_by_field_name("target"), scopes, self_type)
        elif kind == "enum_entry":
            for child in field_children(node, "data_contents"):
                self.walk(child, scopes, self_type)
        elif kind in ("navigation_suffix", "value_argument_label"):
            pass
        else:
            if kind == "simple_identifier":
                self.check_free_name(node, scopes, self_type, call=False)
            elif kind == "user_type":
                ids = named(node, "type_identifier")
                self.check_type_name(node, self.text(ids[-1]) if ids else "")
            for child in node.children:
                self.walk(child, scopes, self_type)

    def walk_type(self, node, scopes):
        name_node = node.child_by_field_name("name")
        name = type_of(self.source, name_node)[1] if name_node.type == "user_type" else self.text(name_node)
        kind_node = node.child_by_field_name("declaration_kind")
        if kind_node is not None and self.text(kind_node) != "extension" and name in self.gen.types:
            self.error(name_node, f"{name} shadows the generated type of the same name")
        for child in node.children:
            if child.type in ("inheritance_specifier", "class_body", "enum_class_body", "protocol_body"):
                self.walk(child, scopes + [{}], ("named", name))

    def walk_property(self, node, scopes, self_type):
        value = node.child_by_field_name("value")
        annotation = next((c for c in node.children if c.type == "type_annotation"), None)
        for child in node.children:
            if child.type in ("type_annotation", "computed_property", "computed_getter", "computed_setter"):
                self.walk(child, scopes, self_type)
        if value is not None:
            self.walk(value, scopes, self_type)
        vtype = type_of(self.source, annotation) if annotation is not None else self.infer(value, scopes, self_type)
        for pattern in field_children(node, "name"):
            self.bind_pattern(pattern, vtype, scopes[-1])

    def bind_pattern(self, pattern, t, scope):
        bound = pattern.child_by_field_name("bound_identifier")
        if bound is not None:
            scope[self.text(bound)] = t
            return
        simple = named(pattern, "simple_identifier")
        subs = named(pattern, "pattern")
        if len(simple) == 1 and not subs:
            scope[self.text(simple[0])] = t
        for sub in subs:
            self.bind_pattern(sub, None, scope)

    def walk_lambda(self, node, scopes, self_type, param_types):
        """A closure; `param_types` are what its caller passes it, when known."""
        scope = {f"${i}": t for i, t in enumerate(param_types)}
        ftype = next((c for c in node.children if c.type == "lambda_function_type"), None)
        params = next((c for c in ftype.children if c.type == "lambda_function_type_parameters"), None) if ftype else None
        for i, p in enumerate(named(params, "lambda_parameter") if params is not None else []):
            names = [x for x in field_children(p, "name") if x.type == "simple_identifier"]
            types = [x for x in field_children(p, "name") if x.type in TYPE_NODES]
            if names:
                given = param_types[i] if i < len(param_types) else None
                scope[self.text(names[-1])] = type_of(self.source, types[0]) if types else given
        for child in node.children:
            if child.type == "statements":
                self.walk(child, scopes + [scope], self_type)

    def walk_conditional(self, node, scopes, self_type):
        """if / guard / while: clauses `let x = e`, `case .p(...) = e` and plain conditions, in
        order, each seeing the bindings before it; the body sees them all, a guard's enclosing
        scope too."""
        scope = {}
        inner = scopes + [scope]
        clauses, body, otherwise, after_else = [[]], [], [], False
        for child in node.children:
            if child.type == "else":
                after_else = True
            elif after_else:
                otherwise.append(child)
            elif child.type == "statements":
                body.append(child)
            elif child.type == ",":
                clauses.append([])
            elif child.type not in ("if", "guard", "while", "{", "}"):
                clauses[-1].append(child)
        for parts in clauses:
            self.walk_clause(parts, inner, self_type, scope)
        if node.type == "guard_statement":
            for child in otherwise:
                self.walk(child, scopes, self_type)
            scopes[-1].update(scope)
        else:
            for child in body:
                self.walk(child, inner, self_type)
            for child in otherwise:
                self.walk(child, scopes, self_type)

    def walk_clause(self, parts, scopes, self_type, scope):
        if not parts:
            return
        eq = next((i for i, p in enumerate(parts) if p.type == "="), None)
        value = parts[eq + 1] if eq is not None and eq + 1 < len(parts) else None
        if value is not None:
            self.walk(value, scopes, self_type)
        if parts[0].type == "case":
            self.check_flat_case(parts[1:eq], self.infer(value, scopes, self_type), scope)
        elif any(p.type == "value_binding_pattern" for p in parts):
            names = [p for p in parts[:eq] if p.type == "simple_identifier"]
            for n in names:  # `if let x = e`, or `if let x` (the same name, unwrapped)
                t = self.infer(value, scopes, self_type) if value is not None else self.lookup(scopes, self_type, self.text(n))
                scope[self.text(n)] = unwrap(t)
        else:
            for p in parts:
                self.walk(p, scopes, self_type)

    def walk_for(self, node, scopes, self_type):
        collection = node.child_by_field_name("collection")
        element = None
        if collection is not None:
            self.walk(collection, scopes, self_type)
            t = unwrap(self.infer(collection, scopes, self_type))
            element = t[1] if t and t[0] == "array" else None
        scope = {}
        item = node.child_by_field_name("item")
        if item is not None:
            self.bind_pattern(item, element, scope)
        for child in node.children:
            if child not in (collection, item):
                self.walk(child, scopes + [scope], self_type)

    def walk_switch(self, node, scopes, self_type):
        subject = node.child_by_field_name("expr")
        self.walk(subject, scopes, self_type)
        subject_type = self.infer(subject, scopes, self_type)
        for entry in named(node, "switch_entry"):
            scope = {}
            for pattern in named(entry, "switch_pattern"):
                for p in named(pattern, "pattern"):
                    self.check_case_pattern(p, subject_type, scope)
            for child in named(entry, "statements"):
                self.walk(child, scopes + [scope], self_type)

    # -- enum cases -------------------------------------------------------------------------

    def check_case(self, node, enum_type, name, arity, labels):
        """`.name` with `arity` values (None: no tuple) of the generated enum `enum_type`."""
        decl = self.gen_type(enum_type)
        if decl is None or decl.kind != "enum":
            return None
        self.checked += 1
        cases = [m for m in decl.members.get(name, []) if m.kind == "case"]
        if not cases:
            hint = near_miss(name, [n for n, ms in decl.members.items() if ms[0].kind == "case"])
            self.error(node, f"{decl.name} has no case .{name}" + (f" (did you mean .{hint}?)" if hint else ""))
            return None
        case = cases[0]
        if arity is not None and arity != len(case.params):
            self.error(node, f"{decl.name}.{name} has {len(case.params)} associated values, the pattern {arity}")
        for i, label in enumerate(labels or []):
            if label and i < len(case.params) and case.params[i].label != label:
                self.error(node, f"{decl.name}.{name}: value {i + 1} is {case.params[i].label or 'unlabeled'}, not {label}")
        return case

    def check_case_pattern(self, pattern, subject_type, scope):
        """One pattern of a switch: `.name`, `.name(let a, _, label: let b)`, `Type.name`."""
        nav = named(pattern, "navigation_expression")
        if nav:
            target = nav[0].child_by_field_name("target")
            if target is not None and target.type == "simple_identifier":
                name = self.suffix(nav[0])
                self.check_case(name, ("named", self.text(target)), self.text(name), None, None)
            return
        self.check_flat_case(pattern.children, subject_type, scope)

    def check_flat_case(self, parts, subject_type, scope):
        """The tokens of a case pattern: [let] . name [( [label:] pattern, ... )]."""
        parts = list(parts)
        dot = next((i for i, p in enumerate(parts) if p.type == "."), None)
        if dot is None or dot + 1 >= len(parts) or parts[dot + 1].type != "simple_identifier":
            for p in parts:
                if p.type == "pattern":
                    self.bind_pattern(p, None, scope)
            return
        name_node, rest = parts[dot + 1], parts[dot + 2:]
        subs, labels, label = [], [], None
        for p in rest:
            if p.type == "simple_identifier":
                label = self.text(p)
            elif p.type == "pattern":
                subs.append(p)
                labels.append(label)
                label = None
        has_tuple = bool(subs) or any(p.type == "(" for p in rest)
        case = self.check_case(name_node, subject_type, self.text(name_node), len(subs) if has_tuple else None, labels)
        for i, sub in enumerate(subs):
            self.bind_pattern(sub, case.params[i].type if case and i < len(case.params) else None, scope)

    # -- calls and members ------------------------------------------------------------------

    def arguments(self, call):
        """(is a subscript, value arguments, trailing closures) of a call."""
        suffix = next((c for c in call.children if c.type == "call_suffix"), None)
        if suffix is None:
            return False, [], []
        args_node = next((c for c in suffix.children if c.type == "value_arguments"), None)
        args = named(args_node, "value_argument") if args_node is not None else []
        closures = [c for c in suffix.children if c.type in ("lambda_literal", "annotated_lambda")]
        subscript = args_node is not None and bool(args_node.children) and args_node.children[0].type == "["
        return subscript, args, closures

    def arg_label(self, arg):
        label = arg.child_by_field_name("name")
        ids = named(label, "simple_identifier") if label is not None else []
        return self.text(ids[0]) if ids else None

    def suffix(self, nav):
        """The member name node of `a.name`."""
        suffix = nav.child_by_field_name("suffix")
        return suffix.child_by_field_name("suffix") if suffix is not None else None

    def suffix_name(self, nav):
        ident = self.suffix(nav)
        return self.text(ident) if ident is not None else None

    def walk_call(self, node, scopes, self_type):
        callee = node.children[0]
        _, args, closures = self.arguments(node)
        labels = [self.arg_label(a) for a in args]
        params = self.callee_params(callee, labels, scopes, self_type)
        filled = match_params(params, labels) if params is not None else None
        elements = self.element_type(node, scopes, self_type)
        for i, arg in enumerate(args):
            value = arg.child_by_field_name("value")
            if value is None:
                continue
            expected = params[filled[i]].type if filled is not None else None
            self.check_implicit_member(value, expected)
            self.check_key_path(value, elements)
            if value.type == "lambda_literal":
                self.walk_lambda(value, scopes, self_type, closure_params(expected, elements))
            else:
                self.walk(value, scopes, self_type)
        rest = params[filled[-1] + 1 if filled else 0:] if filled is not None else []
        for i, closure in enumerate(closures):
            literal = closure if closure.type == "lambda_literal" else next(
                (c for c in closure.children if c.type == "lambda_literal"), closure)
            self.walk_lambda(literal, scopes, self_type, closure_params(rest[i].type if i < len(rest) else None, elements))
        if callee.type == "simple_identifier":
            self.check_free_name(callee, scopes, self_type, call=True)
        else:
            self.walk(callee, scopes, self_type)
        self.infer(node, scopes, self_type)

    def callee_params(self, callee, labels, scopes, self_type):
        """The parameters of what is called, when it is declared (generated or by hand)."""
        candidates = []
        if callee.type == "simple_identifier":
            name = self.text(callee)
            local = unwrap(self.lookup(scopes, self_type, name))
            if local and local[0] == "func":
                return [Param(None, t) for t in local[1]]
            if local and local[0] == "meta":
                decl = self.gen_type(local) or self.own_type(local)
                candidates = decl.members.get("init", []) if decl else []
            else:
                own = self.own_type(self_type)
                candidates = (self.own.functions.get(name) or self.gen.functions.get(name)
                              or ([m for m in own.members.get(name, []) if m.kind == "func"] if own else []))
        elif callee.type == "navigation_expression":
            receiver = self.infer(callee.child_by_field_name("target"), scopes, self_type)
            decl = self.gen_type(receiver) or self.own_type(receiver)
            if decl:
                candidates = [m for m in self.members(decl, self.suffix_name(callee)) if m.kind in ("func", "case")]
        elif callee.type == "prefix_expression":
            return None
        fitting = [m for m in candidates if labels_match(m.params, labels)]
        return (fitting or candidates)[0].params if candidates else None

    def element_type(self, call, scopes, self_type):
        """The element type a closure or key path argument of this call sees, for the collection
        idioms (array methods, ForEach / List)."""
        callee = call.children[0]
        if callee.type == "navigation_expression" and self.suffix_name(callee) in ELEMENT_CLOSURES:
            receiver = unwrap(self.infer(callee.child_by_field_name("target"), scopes, self_type))
            if receiver and receiver[0] == "array":
                return receiver[1]
        if callee.type == "simple_identifier" and self.text(callee) in ELEMENT_VIEWS:
            _, args, _ = self.arguments(call)
            if args and self.arg_label(args[0]) is None:
                data = unwrap(self.infer(args[0].child_by_field_name("value"), scopes, self_type))
                if data and data[0] == "array":
                    return data[1]
        return None

    def check_key_path(self, value, root):
        """`\\.name` where the elements are of a generated type."""
        if value.type == "navigation_expression" and root is not None:
            target = value.child_by_field_name("target")
            if target is not None and target.type == "key_path_expression":
                self.member(self.suffix(value), root, self.suffix_name(value), call=False)

    def check_implicit_member(self, value, expected):
        """`.case` or `.case(label: ...)` passed where a generated enum is expected."""
        node = value.children[0] if value.type == "call_expression" else value
        if node.type != "prefix_expression" or not node.children or node.children[0].type != ".":
            return
        target = node.child_by_field_name("target")
        if target is None or self.gen_type(expected) is None:
            return
        labels = None
        if value.type == "call_expression":
            labels = [self.arg_label(a) for a in self.arguments(value)[1]]
        case = self.check_case(target, expected, self.text(target), len(labels) if labels is not None else None, None)
        if case and labels is not None and not labels_match(case.params, labels):
            self.error(target, f"{call_text('.' + self.text(target), labels)} does not exist; there is .{signature(case)}")

    def check_free_name(self, node, scopes, self_type, call):
        """A bare name in no scope: a near miss of a generated name (a type for a capitalised
        name, else a function) is an error; other names (Apple's) are the compiler's business."""
        name = self.text(node)
        if name.startswith("$") or not (call or name[:1].isupper()) or name in self.own.generics:
            return
        if self.lookup(scopes, self_type, name) is not None or name in self.own.functions or name in self.gen.functions:
            return
        hint = near_miss(name, self.gen.types if name[:1].isupper() else self.gen.functions)
        if hint:
            self.error(node, f"{name} is not declared; the generated Swift has {hint}")

    def check_type_name(self, node, name):
        if name and name not in self.own.types and name not in self.gen.types and name not in self.own.generics:
            hint = near_miss(name, self.gen.types)
            if hint:
                self.error(node, f"type {name} is not declared; the generated Swift has {hint}")

    def member(self, node, receiver, name, call, labels=None):
        """Checks `receiver.name` (called with `labels`, when known); returns its type."""
        if name is None or node is None:
            return None
        r = unwrap(receiver)
        if r and r[0] == "module":  # MeshdropFFI.Name
            if name not in self.gen.types and name not in self.gen.functions:
                self.error(node, f"{self.module} has no {name}")
            return ("meta", name) if name in self.gen.types else None
        if r and r[0] == "array" and name in ("first", "last"):
            return ("opt", r[1])
        if r and r[0] == "dict" and name in ("keys", "values"):
            return ("array", r[1] if name == "keys" else r[2])
        decl = self.gen_type(r)
        if decl is None:
            return self.own_member(r, name, call, labels)
        self.checked += 1
        if name in UNIVERSAL_MEMBERS:
            return ("meta", decl.name) if name == "self" and r[0] == "meta" else None
        found = self.members(decl, name)
        if not found:
            hint = near_miss(name, list(decl.members))
            self.error(node, f"{decl.name} has no member {name}" + (f" (did you mean {hint}?)" if hint else ""))
            return None
        callable_ = [m for m in found if m.kind in ("func", "case", "init")]
        if call and labels is not None and callable_ and not any(labels_match(m.params, labels) for m in callable_):
            self.error(node, f"{decl.name}.{call_text(name, labels)} does not exist; there is {signatures(callable_)}")
        m = found[0]
        if m.kind == "case":
            return ("named", decl.name)
        if m.kind == "var":
            return m.type
        return m.type if call else ("func", [p.type for p in m.params], m.type)

    def own_member(self, receiver, name, call, labels):
        """The type of a member of a hand-written type (not checked: it may be inherited)."""
        own = self.own_type(receiver)
        if own is None:
            return None
        for m in own.members.get(name, []):
            if m.kind == "var":
                return m.type
            if m.kind == "func" and (labels is None or labels_match(m.params, labels)):
                return m.type if call else ("func", [p.type for p in m.params], m.type)
            if m.kind == "case":
                return ("named", own.name)
        return None

    def infer(self, node, scopes, self_type):
        """The type of an expression, checking what it uses of the generated API on the way."""
        if node is None:
            return None
        kind = node.type
        if kind in ("try_expression", "await_expression"):
            t = self.infer(node.child_by_field_name("expr"), scopes, self_type)
            optional = kind == "try_expression" and any(c.type == "try_operator" and "?" in self.text(c) for c in node.children)
            return ("opt", t) if optional and t else t
        if kind == "simple_identifier":
            if self.text(node) == "Self" and self_type:
                return ("meta", self_type[1])
            return self.lookup(scopes, self_type, self.text(node))
        if kind == "self_expression":
            return self_type
        if kind == "postfix_expression":
            return unwrap(self.infer(node.child_by_field_name("target"), scopes, self_type))
        if kind == "tuple_expression" and len(named(node)) == 1:
            return self.infer(named(node)[0], scopes, self_type)
        if kind == "navigation_expression":
            target = node.child_by_field_name("target")
            if target is None or target.type == "key_path_expression":
                return None
            return self.member(self.suffix(node), self.infer(target, scopes, self_type), self.suffix_name(node), call=False)
        if kind == "call_expression":
            return self.infer_call(node, scopes, self_type)
        return None

    def infer_call(self, node, scopes, self_type):
        callee = node.children[0]
        subscript, args, closures = self.arguments(node)
        labels = [self.arg_label(a) for a in args]
        if subscript:
            container = unwrap(self.infer(callee, scopes, self_type))
            if container and container[0] == "array":
                return container[1]
            return ("opt", container[2]) if container and container[0] == "dict" else None
        if callee.type == "simple_identifier":
            return self.infer_free_call(callee, labels, closures, scopes, self_type)
        if callee.type == "navigation_expression":
            receiver = self.infer(callee.child_by_field_name("target"), scopes, self_type)
            name = self.suffix_name(callee)
            array = unwrap(receiver)
            if name in SAME_ARRAY and array and array[0] == "array":
                return array
            # Trailing closures fill parameters too; generated functions take none, so their calls
            # are checked with the closures counted as an unlabeled argument each.
            return self.member(self.suffix(callee), receiver, name, call=True, labels=labels + [None] * len(closures))
        return None

    def infer_free_call(self, callee, labels, closures, scopes, self_type):
        name = self.text(callee)
        local = unwrap(self.lookup(scopes, self_type, name))
        if local and local[0] == "func":
            return local[2]
        labels = labels + [None] * len(closures)
        if local and local[0] == "meta":
            decl = self.gen_type(local)
            if decl is None:
                return ("named", name) if name in self.own.types else None
            self.checked += 1
            inits = decl.members.get("init", [])
            if inits and not any(labels_match(m.params, labels) for m in inits):
                self.error(callee, f"{call_text(name, labels)} does not exist; there is {signatures(inits)}")
            return ("named", name)
        own = self.own_type(self_type)
        mine = [m for m in own.members.get(name, []) if m.kind == "func"] if own else []
        mine += self.own.functions.get(name, [])
        if mine:
            return mine[0].type
        if name in self.gen.functions:
            self.checked += 1
            found = self.gen.functions[name]
            if not any(labels_match(m.params, labels) for m in found):
                self.error(callee, f"{call_text(name, labels)} does not exist; the generated Swift has {signatures(found)}")
            return found[0].type
        return None


def params_of_names(source, node):
    """(internal name, type) of a function's parameters, for its body's scope."""
    out = []
    for c in node.children:
        if c.type != "parameter":
            continue
        names = [x for x in field_children(c, "name") if x.type == "simple_identifier"]
        types = [x for x in field_children(c, "name") if x.type in TYPE_NODES]
        if names:
            out.append((text(source, names[-1]), type_of(source, types[0]) if types else None))
    return out


def closure_params(expected, elements):
    """What a closure argument receives: the declared function type's parameters, else the
    elements of the collection the call walks."""
    t = unwrap(expected)
    if t and t[0] == "func":
        return t[1]
    return [elements, elements] if elements is not None else []


# ---------------------------------------------------------------------------------------------
# Names, plists


def run_names(root):
    out = subprocess.run(["bash", str(root / "ios/build-xcframework.sh"), "--names"], capture_output=True, text=True)
    if out.returncode != 0:
        raise Failure(f"ios/build-xcframework.sh --names failed: {out.stderr.strip()}")
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def string_args(source, call):
    """label -> string literal of a call's arguments; label -> [strings] for array literals."""
    out = {}
    for arg in named(next((c for c in call.children if c.type == "call_suffix"), call), "value_arguments"):
        for a in named(arg, "value_argument"):
            label = a.child_by_field_name("name")
            value = a.child_by_field_name("value")
            if label is None or value is None:
                continue
            key = text(source, label)
            if value.type == "line_string_literal":
                out[key] = "".join(text(source, t) for t in named(value, "line_str_text"))
            elif value.type == "array_literal":
                out[key] = [text(source, v) for v in named(value)]
    return out


def package_targets(source, tree):
    """Every `.target(...)` / `.binaryTarget(...)` call of Package.swift as (kind, args, node)."""
    found = []

    def walk(node):
        if node.type == "call_expression" and node.children[0].type == "prefix_expression":
            target = node.children[0].child_by_field_name("target")
            kind = text(source, target) if target is not None else ""
            if kind in ("target", "binaryTarget", "executableTarget", "library"):
                found.append((kind, string_args(source, node), node))
        for c in node.children:
            walk(c)

    walk(tree.root_node)
    return found


def shown(root, path):
    return path.relative_to(root) if path.is_relative_to(root) else path


def check_names(root, gen, toml_names, package_file):
    errors = []
    package_shown = shown(root, package_file)
    module, ffi_module, ffi_file = (toml_names.get(k) for k in ("module_name", "ffi_module_name", "ffi_module_filename"))
    ffi_file = ffi_file or ffi_module
    if not module or not ffi_module:
        return ["bindings/uniffi.toml: [bindings.swift] needs module_name and ffi_module_name"]
    swift, header, modulemap = gen / f"{module}.swift", gen / f"{ffi_file}.h", gen / f"{ffi_file}.modulemap"
    for f in (swift, header, modulemap):
        if not f.exists():
            errors.append(f"{f}: missing; generated with other names than uniffi.toml's? (files: "
                          f"{', '.join(sorted(p.name for p in gen.iterdir()))})")
    if modulemap.exists() and not re.search(rf"^\s*module {re.escape(ffi_module)} \{{", modulemap.read_text(), re.M):
        declared = re.search(r"^\s*(?:framework )?module (\S+)", modulemap.read_text(), re.M)
        errors.append(f"{modulemap}: declares module {declared.group(1) if declared else '?'}, uniffi.toml's "
                      f"ffi_module_name is {ffi_module} (regenerate the bindings)")
    if swift.exists() and f"canImport({ffi_module})" not in swift.read_text():
        errors.append(f"{swift}: does not import {ffi_module} (regenerate the bindings)")

    names = run_names(root)
    for key, want in (("module", module), ("ffi_module", ffi_module), ("ffi_file", ffi_file)):
        if names.get(key) != want:
            errors.append(f"ios/build-xcframework.sh --names: {key}={names.get(key)}, uniffi.toml says {want}")
    xcframework = f"{ffi_module}.xcframework"
    if Path(names.get("xcframework", "")).name != xcframework:
        errors.append(f"ios/build-xcframework.sh writes {names.get('xcframework')}, not MeshdropKit/{xcframework}")

    source, tree = parse(package_file)
    targets = package_targets(source, tree)
    binaries = [(a, n) for k, a, n in targets if k == "binaryTarget"]
    if len(binaries) != 1:
        errors.append(f"{package_shown}: {len(binaries)} binary targets, expected one")
    for args, node in binaries:
        if args.get("name") != ffi_module:
            errors.append(f"{package_shown}:{node.start_point[0] + 1}: binary target {args.get('name')}, "
                          f"uniffi.toml's ffi_module_name is {ffi_module} (the modulemap's module)")
        if Path(args.get("path", "")).name != xcframework:
            errors.append(f"{package_shown}:{node.start_point[0] + 1}: binary target path {args.get('path')}, "
                          f"build-xcframework.sh writes {xcframework}")
    swift_target = [(a, n) for k, a, n in targets if k == "target" and a.get("name") == module]
    if not swift_target:
        errors.append(f"{package_shown}: no target {module} for the generated Swift (uniffi.toml's module_name)")
    for args, node in swift_target:
        deps = [d.strip('"') for d in args.get("dependencies", [])]
        if ffi_module not in deps:
            errors.append(f"{package_shown}:{node.start_point[0] + 1}: target {module} does not depend on {ffi_module}")
        swift_dir = str(Path(names.get("swift", "")).parent.relative_to("MeshdropKit")) if names.get("swift") else ""
        if args.get("path", f"Sources/{module}") != swift_dir:
            errors.append(f"{package_shown}:{node.start_point[0] + 1}: target {module} path {args.get('path')}, "
                          f"build-xcframework.sh copies the Swift to {swift_dir}")
        if '.linkedFramework("SystemConfiguration")' not in text(source, node):
            errors.append(f"{package_shown}:{node.start_point[0] + 1}: target {module} must link SystemConfiguration "
                          f"(if-watch under libp2p uses it on iOS, rust-libp2p#6161)")
    package_text = source.decode()
    if ".macOS" in package_text and "macos" not in names.get("slices", ""):
        errors.append(f"{package_shown}: lists .macOS but build-xcframework.sh builds no macOS slice "
                      f"({names.get('slices')})")
    return errors


def imported(source, tree):
    return {text(source, named(n, "identifier")[0]).split(".")[0]
            for n in tree.root_node.children if n.type == "import_declaration"}


def check_imports(files, allowed, ffi_module):
    errors = []
    for path, source, tree in files:
        for node in tree.root_node.children:
            if node.type != "import_declaration":
                continue
            module = text(source, named(node, "identifier")[0]).split(".")[0]
            if module == ffi_module:
                errors.append(f"{path}:{node.start_point[0] + 1}: imports the C module {module}; use the generated Swift")
            elif module not in allowed:
                errors.append(f"{path}:{node.start_point[0] + 1}: imports {module}, which is neither a target of "
                              f"MeshdropKit nor a known Apple module (APPLE_MODULES in scripts/check_swift.py)")
    return errors


def check_bundle(root, written):
    """Plists parse; the app group and background task identifiers the Swift uses are declared."""
    errors = []
    app = root / "ios/MeshdropApp"
    where = shown(root, app)
    plists = {}
    for f in sorted(list(app.glob("*.plist")) + list(app.glob("*.entitlements"))):
        try:
            plists[f.name] = plistlib.loads(f.read_bytes())
        except Exception as e:  # noqa: BLE001 - any parse failure is the finding
            errors.append(f"{where / f.name}: not a property list: {e}")
    project = (app / "project.yml").read_text()
    for key, name in re.findall(r"^\s*(INFOPLIST_FILE|CODE_SIGN_ENTITLEMENTS):\s*(\S+)", project, re.M):
        if not (app / name).exists():
            errors.append(f"{where / 'project.yml'}: {key} names {name}, which does not exist")
    if re.search(r"^\s*(info|entitlements):", project, re.M):
        errors.append(f"{where / 'project.yml'}: `info:` / `entitlements:` regenerate the hand-written files; "
                      f"name them with INFOPLIST_FILE / CODE_SIGN_ENTITLEMENTS")
    group = written.constants.get("Inbox.appGroup")
    task = written.constants.get("BackgroundTransfers.resumeTask")
    for name, value in (("Inbox.appGroup", group), ("BackgroundTransfers.resumeTask", task)):
        if value is None:
            errors.append(f"ios/: no string constant {name}, which names the app group / background task")
    for name, plist in plists.items():
        if name.endswith(".entitlements") and group not in plist.get("com.apple.security.application-groups", []):
            errors.append(f"{where / name}: not in the app group {group} (Inbox.appGroup)")
    info = plists.get("Info.plist", {})
    if task not in info.get("BGTaskSchedulerPermittedIdentifiers", []):
        errors.append(f"{where / 'Info.plist'}: BGTaskSchedulerPermittedIdentifiers lacks {task} (BackgroundTransfers.resumeTask)")
    if "processing" not in info.get("UIBackgroundModes", []):
        errors.append(f"{where / 'Info.plist'}: UIBackgroundModes lacks processing (BGProcessingTask)")
    link_type = written.constants.get("PeerToPeerLinkDriver.serviceType")
    if link_type is None:
        errors.append("ios/: no string constant PeerToPeerLinkDriver.serviceType, which names the link service")
    elif link_type not in info.get("NSBonjourServices", []):
        errors.append(f"{where / 'Info.plist'}: NSBonjourServices lacks {link_type} (PeerToPeerLinkDriver.serviceType)")
    aware = written.constants.get("WiFiAwareLinkDriver.serviceName")
    if aware is None:
        errors.append("ios/: no string constant WiFiAwareLinkDriver.serviceName, which names the Wi-Fi Aware service")
    else:
        roles = info.get("WiFiAwareServices", {}).get(aware, {})
        for role in ("Publishable", "Subscribable"):
            if role not in roles:
                errors.append(f"{where / 'Info.plist'}: WiFiAwareServices lacks {aware} {role} "
                              f"(WiFiAwareLinkDriver.serviceName)")
        capabilities = plists.get("MeshdropApp.entitlements", {}).get("com.apple.developer.wifi-aware", [])
        for capability in ("Publish", "Subscribe"):
            if capability not in capabilities:
                errors.append(f"{where / 'MeshdropApp.entitlements'}: com.apple.developer.wifi-aware lacks {capability}")
    for key in ("NSLocalNetworkUsageDescription", "NSBonjourServices", "NSPhotoLibraryAddUsageDescription",
                "UIFileSharingEnabled", "LSSupportsOpeningDocumentsInPlace"):
        if not info.get(key):
            errors.append(f"{where / 'Info.plist'}: {key} missing or off")
    return errors


# ---------------------------------------------------------------------------------------------


def check(root, generated_dir):
    """All checks; returns (errors, summary)."""
    gen = generated_dir / "swift"
    toml = tomllib.loads((root / "bindings/uniffi.toml").read_text())
    names = toml.get("bindings", {}).get("swift", {})
    module = names.get("module_name", "")
    errors = []

    generated_swift = sorted(gen.glob("*.swift"))
    if not generated_swift:
        raise Failure(f"no generated Swift in {gen} (run bindings/generate.sh {generated_dir})")
    written_swift = sorted(p for p in (root / "ios").rglob("*.swift") if ".build" not in p.parts)
    parsed = {}
    for path in generated_swift + written_swift:
        source, tree = parse(path)
        errors += syntax_errors(path.relative_to(root) if path.is_relative_to(root) else path, source, tree)
        parsed[path] = (source, tree)

    generated, written = Decls(), Decls()
    for path in generated_swift:
        collect(path, *parsed[path], generated, public_only=True)
    # Extensions of Apple's types (Data, String, ...) are not generated types.
    generated.types = {n: t for n, t in generated.types.items() if t.kind != "extension"}
    hand = [(p.relative_to(root), *parsed[p]) for p in written_swift if p.name != "Package.swift"]
    for path, source, tree in hand:
        collect(path, source, tree, written, public_only=False)
    api = ApiCheck(generated, written, module)
    for path, source, tree in hand:
        before = api.checked
        api.check_file(path, source, tree)
        # The generated module, or MeshdropKit which re-exports it to the app.
        importers = {module} if path.is_relative_to("ios/MeshdropKit") else {module, "MeshdropKit"}
        if api.checked > before and not importers & imported(source, tree):
            errors.append(f"{path}: uses the generated API but imports none of {', '.join(sorted(importers))}")
    api.check_conformances()
    errors += api.errors

    package = root / "ios/MeshdropKit/Package.swift"
    targets = {a.get("name") for k, a, _ in package_targets(*parse(package)) if k in ("target", "binaryTarget")}
    errors += check_names(root, gen, names, package)
    errors += check_imports(hand, APPLE_MODULES | targets, names.get("ffi_module_name"))
    errors += check_bundle(root, written)
    summary = (f"{len(generated_swift) + len(written_swift)} Swift files parse; {api.checked} uses of the generated "
               f"API ({len(generated.types)} types, {len(generated.functions)} functions) checked")
    return errors, summary


# ---------------------------------------------------------------------------------------------
# Self-test: broken copies of the tree must fail, each with the message that names the break.

MUTATIONS = [
    ("a misspelled method of a generated type", "ios/MeshdropKit/Sources/MeshdropKit/MeshdropHost.swift",
     "node.sendFiles(peerId:", "node.sendFile(peerId:", "Node has no member sendFile"),
    ("a misspelled generated type", "ios/MeshdropKit/Sources/MeshdropKit/MeshdropHost.swift",
     "let config = NodeConfig(", "let config = NodeConfg(", "the generated Swift has NodeConfig"),
    ("a wrong argument label", "ios/MeshdropKit/Sources/MeshdropKit/BonjourDiscoveryDriver.swift",
     "node.peerGone(instanceName: name)", "node.peerGone(name: name)", "Node.peerGone(name:) does not exist"),
    ("a misspelled enum case", "ios/MeshdropApp/Sources/NodeModel.swift",
     "case .messageReceived, .messageStateChanged:", "case .messageReceived, .messageStateChange:",
     "NodeEvent has no case .messageStateChange"),
    ("an enum pattern of the wrong arity", "ios/MeshdropKit/Sources/MeshdropKit/BackgroundTransfers.swift",
     "let .transferFinished(id, _, _, _)", "let .transferFinished(id, _, _)", "transferFinished has 4 associated values"),
    ("a misspelled record field", "ios/MeshdropApp/Sources/Views.swift",
     "peer.verificationCode)", "peer.verificationcode)", "PeerInfo has no member verificationcode"),
    ("a misspelled generated function", "ios/MeshdropKit/Sources/MeshdropKit/Meshdrop.swift",
     "try await startNode(config:", "try await startNod(config:", "the generated Swift has startNode"),
    ("a wrong initialiser label", "ios/MeshdropKit/Sources/MeshdropKit/MeshdropHost.swift",
     "onBattery: UIDevice", "battery: UIDevice", "NodeConfig(dataDir:deviceName:bind:mdns:battery:relays:) does not exist"),
    ("a misspelled field in a closure over generated values", "ios/MeshdropApp/Sources/Views.swift",
     '"from \\(m.fromPeer', '"from \\(m.from', "Message has no member from"),
    ("a misspelled key path on generated values", "ios/MeshdropApp/Sources/Views.swift",
     "ForEach(model.peers, id: \\.peerId) { peer in\n                        HStack",
     "ForEach(model.peers, id: \\.peerID) { peer in\n                        HStack", "PeerInfo has no member peerID"),
    ("a listener that no longer implements the generated protocol", "ios/MeshdropKit/Sources/MeshdropKit/Meshdrop.swift",
     "func onEvent(event: NodeEvent)", "func onEvent(_ event: NodeEvent)", "has no onEvent(event:)"),
    ("an import of the C module's old name", "ios/MeshdropKit/Sources/MeshdropKit/MeshdropHost.swift",
     "import MeshdropFFI\n", "import MeshdropFFIFFI\n", "imports MeshdropFFIFFI"),
    ("a file that uses generated types without importing them", "ios/MeshdropApp/Sources/Views.swift",
     "import MeshdropKit\n", "", "uses the generated API but imports none of MeshdropFFI, MeshdropKit"),
    ("a binary target named unlike the C module", "ios/MeshdropKit/Package.swift",
     '.binaryTarget(name: "meshdrop_ffiFFI"', '.binaryTarget(name: "MeshdropFFIFFI"', "binary target MeshdropFFIFFI"),
    ("an xcframework path unlike the one built", "ios/MeshdropKit/Package.swift",
     'path: "meshdrop_ffiFFI.xcframework"', 'path: "MeshdropFFI.xcframework"', "binary target path MeshdropFFI.xcframework"),
    ("a macOS platform with no macOS slice", "ios/MeshdropKit/Package.swift",
     "platforms: [.iOS(.v16)]", "platforms: [.iOS(.v16), .macOS(.v13)]", "lists .macOS"),
    ("uniffi.toml renaming the C module", "bindings/uniffi.toml",
     'ffi_module_name = "meshdrop_ffiFFI"', 'ffi_module_name = "MeshdropCore"', "declares module meshdrop_ffiFFI"),
    ("a Swift syntax error", "ios/MeshdropApp/Sources/Views.swift",
     "struct OfferView: View {", "struct OfferView: View {{", "syntax error"),
    ("a background task the Info.plist does not permit", "ios/MeshdropKit/Sources/MeshdropKit/BackgroundTransfers.swift",
     '"org.meshdrop.app.resume-transfers"', '"org.meshdrop.app.resume"', "lacks org.meshdrop.app.resume"),
    ("a link service type the Info.plist does not declare", "ios/MeshdropKit/Sources/MeshdropKit/PeerToPeerLinkDriver.swift",
     '"_meshdrop-link._tcp"', '"_meshdrop-links._tcp"', "NSBonjourServices lacks _meshdrop-links._tcp"),
    ("a Wi-Fi Aware service the Info.plist does not declare",
     "ios/MeshdropKit/Sources/MeshdropKit/WiFiAwareLinkDriver.swift",
     'serviceName = "_meshdrop-link._tcp"', 'serviceName = "_meshdrop-aware._tcp"',
     "WiFiAwareServices lacks _meshdrop-aware._tcp Publishable"),
    ("a Wi-Fi Aware entitlement without Subscribe", "ios/MeshdropApp/MeshdropApp.entitlements",
     "<string>Subscribe</string>", "", "com.apple.developer.wifi-aware lacks Subscribe"),
    ("a link driver that no longer implements the generated protocol",
     "ios/MeshdropKit/Sources/MeshdropKit/PeerToPeerLinkDriver.swift",
     "public func openLink(medium: String, device: String)", "public func openLink(device: String)",
     "has no openLink(medium:device:)"),
]


def self_test(root, generated_dir):
    passed, failed = 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "repo"
        for part in ("ios", "bindings/uniffi.toml"):
            src, dst = root / part, base / part
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
        errors, _ = check(base, generated_dir)
        if errors:
            print("self-test: the unchanged tree already fails:\n  " + "\n  ".join(errors))
            return 1
        for what, rel, old, new, expected in MUTATIONS:
            path = base / rel
            original = path.read_text()
            if old not in original:
                print(f"FAIL {what}: {rel} no longer contains {old!r}; update MUTATIONS")
                failed += 1
                continue
            path.write_text(original.replace(old, new, 1))
            try:
                errors, _ = check(base, generated_dir)
            finally:
                path.write_text(original)
            hits = [e for e in errors if expected in e]
            if hits:
                print(f"ok   {what}: {hits[0]}")
                passed += 1
            else:
                print(f"FAIL {what}: expected an error with {expected!r}, got {errors or 'none'}")
                failed += 1
    print(f"self-test: {passed} passed, {failed} failed")
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("generated", type=Path, help="bindings/generate.sh's output folder (holds swift/)")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    generated = args.generated.resolve()
    try:
        if args.self_test:
            return self_test(args.root.resolve(), generated)
        errors, summary = check(args.root.resolve(), generated)
    except Failure as e:
        print(f"check-swift: {e}", file=sys.stderr)
        return 1
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        print(f"check-swift: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    print(f"check-swift: ok: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
