// The one translation unit that compiles Boost.JSON (header-only mode) for every pgflip target.
#include <boost/json/src.hpp>
