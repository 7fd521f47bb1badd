package router

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"google.golang.org/grpc"
)

// Local is a method the gateway answers itself instead of forwarding it:
// a composite endpoint. Its call passes the whole chain as any call does,
// with Route as its route (its name and policies), and Handler runs in the
// proxy's place.
type Local struct {
	Route   *Route
	Handler grpc.StreamHandler
	// Legs describe what the handler calls, for Write.
	Legs []LocalLeg
}

// LocalLeg describes one call a Local method makes.
type LocalLeg struct {
	Name, Method string
	Optional     bool
	// After are the legs it waits for; FanOut the repeated field it is
	// called once per item of ("" for none).
	After  []string
	FanOut string
}

// SetLocal gives the table its local methods, by "/pkg.Service/Method";
// it is called once, before the table is published.
func (t *Table) SetLocal(local map[string]*Local) { t.local = local }

// Local returns the local method fullMethod ("/pkg.Service/Method"), or
// nil.
func (t *Table) Local(fullMethod string) *Local {
	if len(t.local) == 0 {
		return nil
	}
	return t.local["/"+strings.TrimPrefix(fullMethod, "/")]
}

// lookupAny returns the route of fullMethod: a local method's, else the
// table's.
func (t *Table) lookupAny(fullMethod string) *Route {
	if l := t.Local(fullMethod); l != nil {
		return l.Route
	}
	return t.Lookup(fullMethod)
}

// WriteLocal prints the local methods with their legs: each leg's method,
// the route it takes, what it waits for, and whether it may fail.
func (t *Table) WriteLocal(w io.Writer) error {
	if len(t.local) == 0 {
		return nil
	}
	var names []string
	for m := range t.local {
		names = append(names, m)
	}
	slices.Sort(names)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPOSITE\tMETHOD\tLEG\tCALLS\tROUTE\tAFTER\tFAILURE")
	for _, m := range names {
		l := t.local[m]
		fmt.Fprintf(tw, "%s\t%s\t\t\t\t\t\n", l.Route.Name, strings.TrimPrefix(m, "/"))
		for _, leg := range l.Legs {
			route := "(no route)"
			if r := t.Lookup(leg.Method); r != nil {
				route = r.Name
			}
			after := "-"
			if len(leg.After) > 0 {
				after = strings.Join(leg.After, ",")
			}
			fail := "required"
			if leg.Optional {
				fail = "optional"
			}
			calls := strings.TrimPrefix(leg.Method, "/")
			if leg.FanOut != "" {
				calls += " per " + leg.FanOut
			}
			fmt.Fprintf(tw, "\t\t%s\t%s\t%s\t%s\t%s\n", leg.Name, calls, route, after, fail)
		}
	}
	return tw.Flush()
}
