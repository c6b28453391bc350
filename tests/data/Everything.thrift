// A service with every kind of Thrift type, for tests/test_thrift_idl.py: it
// compares the bytes of txscales' calls and replies with this IDL loaded at
// run time by thriftpy2 with those of the code Apache Thrift's compiler
// generated from it (tests/idlgen/, by "thrift --gen py" 0.17.0; see
// tests/data/README.rst).
namespace py tests.idlgen

enum Color {
  RED = 1,
  GREEN = 2,
  BLUE = 5
}

struct Point {
  1: i32 x
  2: i32 y = 7
}

struct Shape {
  1: string name = "shape"
  2: binary data
  3: Color color = Color.GREEN
  4: list<Point> points
  5: set<string> tags
  6: map<string, list<Point>> groups
  7: optional Point origin
  8: bool filled = true
  9: double weight
  10: i8 tiny
  11: i16 small
  12: i64 big
  13: list<map<Color, set<i64>>> nested
}

// A recursive struct.
struct Tree {
  1: string label
  2: list<Tree> children
}

union Value {
  1: i64 number
  2: string text
}

exception NotFound {
  1: string key
}

exception Invalid {
  1: i32 code
  2: string reason = "invalid"
}

service Everything {
  // Answer the shape, or raise NotFound (empty name) or Invalid (no points).
  Shape echoShape(1: Shape shape) throws (1: NotFound notFound, 2: Invalid invalid)

  // Arguments declared out of id order: handlers take them in IDL order.
  map<string, list<set<i32>>> containers(3: list<i32> numbers, 1: map<string, set<i32>> groups, 2: bool flag)

  binary bytesOf(1: string text)

  string textOf(1: binary data)

  Color pick(1: list<Color> colors)

  Tree grow(1: Tree seed, 2: Value value)

  i64 withDefaults(1: i32 a = 3, 2: string b = "bee")

  void nothing()

  oneway void fire(1: string event)
}
