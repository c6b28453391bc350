// The IDL of txscales call's and list's tests: every Thrift type, a struct
// with a required field and a default, an exception, an enum, a one-way
// method and a service that extends another.
namespace py shapes

enum Color {
  RED = 1,
  GREEN = 2,
  BLUE = 3
}

struct Point {
  1: required i32 x,
  2: optional i32 y = 5,
  3: string label
}

exception Oops {
  1: string message,
  2: i32 code
}

service Base {
  void ping()
}

service Shapes extends Base {
  Point move(1: Point p, 2: i32 dx = 1) throws (1: Oops oops),
  map<i32, string> names(1: map<i32, string> byId, 2: map<Color, list<Point>> byColor, 3: map<Point, bool> flags),
  set<Color> colors(1: set<Color> cs, 2: list<binary> blobs, 3: double d, 4: bool b, 5: i8 small, 6: i64 big, 7: i16 medium),
  oneway void fire(1: i16 n)
}
